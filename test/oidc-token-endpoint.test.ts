import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintCodes, type BenchClient } from '../bench/oidc.js';
import { KEYSTORE_MAX_AGE_MS } from '../src/oidc/keys.js';
import { createTestApp, type TestApp } from './support/app.js';
import { describeWithRedis, redisCaches } from './support/redis.js';
import { bearer, login, PASSWORD, seedTenant, type SeededUser } from './support/tenants.js';
import { freePort } from './support/net.js';

/**
 * The provider's token endpoint on its hot path: the statements a refresh runs, the client
 * record it reads from cache (and reads again once the client changes, on every instance), and
 * the provider kept while its keys stay the same.
 */
/** An instance listening on its own port, PUBLIC_URL set to it. */
async function listening(options: Parameters<typeof createTestApp>[0] = {}): Promise<{ t: TestApp; base: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t = await createTestApp({ ...options, publicUrl: base });
  await t.app.listen({ port, host: '127.0.0.1' });
  return { t, base };
}

async function register(t: TestApp, slug: string, token: string, base: string): Promise<BenchClient> {
  const redirectUri = `${base}/callback`;
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/oidc/clients`, headers: bearer(token), payload: { name: 'App', type: 'confidential', redirect_uris: [redirectUri] } });
  expect(res.statusCode, res.body).toBe(201);
  const { client_id: id, client_secret: secret } = res.json() as { client_id: string; client_secret: string };
  return { id, secret, redirectUri, authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` };
}

async function tokenRequest(base: string, slug: string, client: BenchClient, form: Record<string, string>) {
  const res = await fetch(`${base}/api/v1/tenants/${slug}/oidc/token`, {
    method: 'POST',
    headers: { authorization: client.authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as { refresh_token?: string; id_token?: string; error?: string } };
}

/** Exchanges a freshly minted code: the answer's refresh token. */
async function signedIn(base: string, slug: string, client: BenchClient, email: string): Promise<string> {
  const [code] = await mintCodes(base, slug, client, email, PASSWORD, 1);
  const exchanged = await tokenRequest(base, slug, client, { grant_type: 'authorization_code', code: code!, redirect_uri: client.redirectUri });
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  return exchanged.body.refresh_token!;
}

/** The statements sent to PostgreSQL while `fn` runs (this process's clients). */
async function statementsOf(fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const original = pg.Client.prototype.query;
  (pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const query = args[0] as { text?: string } | string;
    seen.push(typeof query === 'string' ? query : String(query?.text));
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  try {
    await fn();
  } finally {
    pg.Client.prototype.query = original;
  }
  return seen;
}

describe('one instance', () => {
  let t: TestApp;
  let base: string;
  let admin: SeededUser;
  let token: string;

  beforeAll(async () => {
    ({ t, base } = await listening());
    admin = await seedTenant(t, 'te');
    token = (await login(t.app, 'te', admin.email)).access_token;
  });
  afterAll(async () => t?.close());

  it('refreshes with three statements: the token with its grant and session link, the user, the new access token', async () => {
    const client = await register(t, 'te', token, base);
    const refreshToken = await signedIn(base, 'te', client, admin.email);
    expect((await tokenRequest(base, 'te', client, { grant_type: 'refresh_token', refresh_token: refreshToken })).status).toBe(200);
    let answer: Awaited<ReturnType<typeof tokenRequest>> | undefined;
    const statements = await statementsOf(async () => (answer = await tokenRequest(base, 'te', client, { grant_type: 'refresh_token', refresh_token: refreshToken })));
    expect(answer!.status, JSON.stringify(answer!.body)).toBe(200);
    expect(answer!.body.id_token).toBeTruthy();
    expect(statements, statements.join('\n')).toHaveLength(3);
    expect(statements.filter((s) => /from "tenant_te"\."oidc_clients"/.test(s))).toEqual([]);
  });

  it('reads a client again once it is changed or deleted through the API', async () => {
    const client = await register(t, 'te', token, base);
    const refreshToken = await signedIn(base, 'te', client, admin.email);
    expect((await tokenRequest(base, 'te', client, { grant_type: 'refresh_token', refresh_token: refreshToken })).status).toBe(200);

    const patched = await t.app.inject({ method: 'PATCH', url: `/api/v1/tenants/te/oidc/clients/${client.id}`, headers: bearer(token), payload: { grant_types: ['authorization_code'] } });
    expect(patched.statusCode, patched.body).toBe(200);
    const refused = await tokenRequest(base, 'te', client, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/te/oidc/clients/${client.id}`, headers: bearer(token) });
    expect(deleted.statusCode, deleted.body).toBe(204);
    const gone = await tokenRequest(base, 'te', client, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(gone.status).toBe(401);
    expect(gone.body.error).toBe('invalid_client');
  });

  it('keeps the provider while its keys stay the same, and builds a new one after a rotation', async () => {
    const tenant = await t.services.directory.resolve('te');
    const providers = t.services.oidcProviders;
    const first = await providers.get(tenant);
    const later = Date.now() + KEYSTORE_MAX_AGE_MS + 1000;
    expect(await providers.get(tenant, later)).toBe(first);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/te/oidc/signing-keys/rotate', headers: bearer(token) })).statusCode).toBe(200);
    expect(await providers.get(tenant, later + KEYSTORE_MAX_AGE_MS + 1000)).not.toBe(first);
  });
});

describeWithRedis('two instances with Redis', () => {
  let one: TestApp;
  let two: { t: TestApp; base: string };
  let admin: SeededUser;
  const redis = redisCaches();

  beforeAll(async () => {
    if (!inject('redisUrl')) return;
    const prefix = `oidc-clients-${randomUUID()}:`;
    one = await createTestApp({ cache: await redis.connect(prefix) });
    two = await listening({ cache: await redis.connect(prefix), database: one.db });
    admin = await seedTenant(one, 'tr');
  });
  afterAll(async () => {
    await two?.t.close();
    await one?.close();
    await redis.close();
  });

  it('a client changed on one instance is read again on the other', async () => {
    const token = (await login(one.app, 'tr', admin.email)).access_token;
    const client = await register(one, 'tr', token, two.base);
    const refreshToken = await signedIn(two.base, 'tr', client, admin.email);
    expect((await tokenRequest(two.base, 'tr', client, { grant_type: 'refresh_token', refresh_token: refreshToken })).status).toBe(200);

    const patched = await one.app.inject({ method: 'PATCH', url: `/api/v1/tenants/tr/oidc/clients/${client.id}`, headers: bearer(token), payload: { grant_types: ['authorization_code'] } });
    expect(patched.statusCode, patched.body).toBe(200);
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < 1000) {
      status = (await tokenRequest(two.base, 'tr', client, { grant_type: 'refresh_token', refresh_token: refreshToken })).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(400);
  });
});
