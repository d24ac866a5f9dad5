import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/** `oidc/clients` and the provider's signing keys: CRUD, validation, permissions, tenant isolation. Two tenants. */
const t = useTenants(['oa', 'ob']);
let manager: string;

beforeAll(async () => {
  await seedUser(t, 'oa', { email: 'manager@oa.example', roles: ['manager'] });
  manager = (await login(t.app, 'oa', 'manager@oa.example')).access_token;
});

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, token: string, payload?: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url: `/api/v1/tenants/${url}`, headers: { ...bearer(token), ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });

const fields = (body: { errors?: { field: string }[] }) => (body.errors ?? []).map((e) => e.field).sort();

describe('oidc/clients', () => {
  it('registers a confidential client, showing its secret once and keeping only its hash', async () => {
    const res = await call('POST', 'oa/oidc/clients', t.tokens.oa, { name: 'Intranet', type: 'confidential', redirect_uris: ['https://intranet.example.com/cb'] });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ name: 'Intranet', type: 'confidential', client_id: body.id, grant_types: ['authorization_code', 'refresh_token'], post_logout_redirect_uris: [] });
    expect(body.client_secret).toMatch(/^ocs_/);
    expect(res.headers.location).toBe(`/api/v1/tenants/oa/oidc/clients/${body.id}`);
    const stored = await tenantDb(t.db.database.db, 'tenant_oa').selectFrom('oidc_clients').select('client_secret_hash').where('id', '=', body.id).executeTakeFirstOrThrow();
    expect(stored.client_secret_hash).toBe(createHash('sha256').update(body.client_secret).digest('hex'));
    const read = await call('GET', `oa/oidc/clients/${body.id}`, t.tokens.oa);
    expect(read.statusCode).toBe(200);
    expect(read.json()).not.toHaveProperty('client_secret');
    expect(read.json()).not.toHaveProperty('client_secret_hash');
    expect(read.headers.etag).toBeDefined();
  });

  it('registers a public client without a secret, and a native app with its own scheme', async () => {
    const res = await call('POST', 'oa/oidc/clients', t.tokens.oa, { name: 'App', type: 'public', redirect_uris: ['com.example.app:/callback', 'http://localhost:3000/cb'], grant_types: ['authorization_code'] });
    expect(res.statusCode).toBe(201);
    expect(res.json()).not.toHaveProperty('client_secret');
    expect(res.json().grant_types).toEqual(['authorization_code']);
  });

  it('refuses bad redirect URIs and grant types, naming each field', async () => {
    const res = await call('POST', 'oa/oidc/clients', t.tokens.oa, {
      name: 'Bad',
      type: 'confidential',
      redirect_uris: ['http://intranet.example.com/cb', 'https://x.example/cb#frag', 'com.example.app:/cb'],
      post_logout_redirect_uris: ['not a url'],
      grant_types: ['refresh_token'],
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().code).toBe('request.invalid');
    expect([...new Set(fields(res.json()))]).toEqual(['grant_types', 'post_logout_redirect_uris', 'redirect_uris']);
    const schema = await call('POST', 'oa/oidc/clients', t.tokens.oa, { name: 'x', type: 'other', redirect_uris: [] });
    expect(schema.statusCode).toBe(400);
    expect(fields(schema.json())).toEqual(expect.arrayContaining(['redirect_uris', 'type']));
  });

  it('changes and deletes a client, honouring If-Match', async () => {
    const id = (await call('POST', 'oa/oidc/clients', t.tokens.oa, { name: 'Old', type: 'public', redirect_uris: ['https://a.example/cb'] })).json().id;
    const stale = await call('PATCH', `oa/oidc/clients/${id}`, t.tokens.oa, { name: 'New' }, { 'if-match': '"99"' });
    expect(stale.statusCode).toBe(412);
    const patched = await call('PATCH', `oa/oidc/clients/${id}`, t.tokens.oa, { name: 'New', redirect_uris: ['https://b.example/cb'] });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ name: 'New', redirect_uris: ['https://b.example/cb'] });
    expect((await call('DELETE', `oa/oidc/clients/${id}`, t.tokens.oa)).statusCode).toBe(204);
    const gone = await call('GET', `oa/oidc/clients/${id}`, t.tokens.oa);
    expect(gone.statusCode).toBe(404);
    expect(gone.json().code).toBe('oidc_client.not_found');
  });

  it("keeps each tenant's clients to itself", async () => {
    const id = (await call('POST', 'oa/oidc/clients', t.tokens.oa, { name: 'Mine', type: 'public', redirect_uris: ['https://a.example/cb'] })).json().id;
    expect((await call('GET', `ob/oidc/clients/${id}`, t.tokens.ob)).statusCode).toBe(404);
    expect((await call('DELETE', `ob/oidc/clients/${id}`, t.tokens.ob)).statusCode).toBe(404);
    expect((await call('GET', 'ob/oidc/clients', t.tokens.ob)).json().total).toBe(0);
    expect((await call('GET', `oa/oidc/clients/${id}`, t.tokens.ob)).statusCode).toBe(403);
  });

  it('is for admins only by default', async () => {
    expect((await call('GET', 'oa/oidc/clients', manager)).statusCode).toBe(403);
    expect((await call('POST', 'oa/oidc/clients', manager, { name: 'M', type: 'public', redirect_uris: ['https://a.example/cb'] })).statusCode).toBe(403);
    expect((await call('POST', 'oa/oidc/signing-keys/rotate', manager)).statusCode).toBe(403);
  });
});

describe('oidc/signing-keys', () => {
  it('rotates with an overlap: the old key stays published until its tokens expire, private keys stay encrypted', async () => {
    const first = await t.services.oidcKeys.keystore(await t.services.directory.resolve('ob'));
    expect(first.keys).toHaveLength(1);
    const rotated = await call('POST', 'ob/oidc/signing-keys/rotate', t.tokens.ob);
    expect(rotated.statusCode).toBe(200);
    const listed = (await call('GET', 'ob/oidc/signing-keys', t.tokens.ob)).json().items as { kid: string; retired_at: string | null; published_until: string | null }[];
    expect(listed).toHaveLength(2);
    expect(listed[0]).toMatchObject({ kid: rotated.json().kid, retired_at: null, published_until: null });
    expect(Date.parse(listed[1]!.published_until!)).toBeGreaterThan(Date.parse(listed[1]!.retired_at!));
    // The old key signs until the new one has reached every instance; both are published.
    const now = await t.services.oidcKeys.keystore(await t.services.directory.resolve('ob'));
    expect(now.keys.map((k) => k.kid)).toEqual([listed[1]!.kid, listed[0]!.kid]);
    expect(now.keys[1]!.key_ops).toEqual(['verify']);
    const later = await t.services.oidcKeys.keystore(await t.services.directory.resolve('ob'), Date.now() + 10 * 60_000);
    expect(later.keys.map((k) => k.kid)).toEqual([listed[0]!.kid, listed[1]!.kid]);
    const afterExpiry = await t.services.oidcKeys.keystore(await t.services.directory.resolve('ob'), Date.now() + 3 * 3_600_000);
    expect(afterExpiry.keys.map((k) => k.kid)).toEqual([listed[0]!.kid]);
    const stored = await tenantDb(t.db.database.db, 'tenant_ob').selectFrom('oidc_signing_keys').select('encrypted_private_jwk').execute();
    for (const row of stored) expect(row.encrypted_private_jwk).toMatch(/^v1\./);
    // The other tenant has its own keys.
    expect((await t.services.oidcKeys.keystore(await t.services.directory.resolve('oa'))).keys[0]!.kid).not.toBe(listed[0]!.kid);
  });
});
