import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { issueSystemToken } from '../src/auth/system-token.js';
import { databaseCheck } from '../src/health/routes.js';
import { TEST_SECRET, testKeys } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { runTs } from './support/process.js';
import { login } from './support/tenants.js';

const t = useTenants(['sa', 'sb'], { login: false });
const now = () => Math.floor(Date.now() / 1000);
const YEAR = 365 * 24 * 3600;

/** Signs `claims` with the test secret; `iat`/`exp` only where given. */
function sign(claims: Record<string, unknown>, secret = TEST_SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

const good = () => ({ type: 'system', sub: 'tenant-service', iss: 'auth-service', aud: 'system-service', iat: now(), exp: now() + 300 });
const listTenants = (token: string, app = t.app) => app.inject({ method: 'GET', url: '/api/v1/tenants', headers: { authorization: `Bearer ${token}` } });

describe('system tokens', () => {
  it('a token with type, iss, aud, iat and exp at most an hour apart lists every tenant', async () => {
    const res = await listTenants(await sign(good()));
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((x: { slug: string }) => x.slug)).toEqual(expect.arrayContaining(['sa', 'sb']));
    // `aud` may be a list holding ours; exactly an hour is the longest life.
    expect((await listTenants(await sign({ ...good(), aud: ['other-service', 'system-service'] }))).statusCode).toBe(200);
    expect((await listTenants(await sign({ ...good(), exp: now() + 3600 }))).statusCode).toBe(200);
    // The test helpers' tokens are ours, issued like the CLI's.
    expect((await listTenants(await t.systemToken())).statusCode).toBe(200);
  });

  // Changes to a good token, made when the test runs (the times are relative to its iat).
  it.each<[string, (iat: number) => Record<string, unknown>]>([
    ['exp ten years out', (iat) => ({ exp: iat + 10 * YEAR })],
    ['a lifetime of an hour and a second', (iat) => ({ exp: iat + 3601 })],
    ['no iss', () => ({ iss: undefined })],
    ['another iss', () => ({ iss: 'someone-else' })],
    ['no aud', () => ({ aud: undefined })],
    ['another aud', () => ({ aud: 'billing-service' })],
    ['an aud list without ours', () => ({ aud: ['billing-service'] })],
    ['no iat', () => ({ iat: undefined })],
    ['iat in the future (an hour before an exp ten years out)', (iat) => ({ iat: iat + 10 * YEAR - 3000, exp: iat + 10 * YEAR })],
    ['exp before iat', (iat) => ({ iat: iat + 20, exp: iat + 10 })],
    ['no exp', () => ({ exp: undefined })],
    ['type other than system', () => ({ type: 'admin' })],
  ])('refuses a token with %s (401 problem+json; 403 for a signed token of another type)', async (_what, changeOf) => {
    const base = good();
    const change = changeOf(base.iat);
    const res = await listTenants(await sign({ ...base, ...change }));
    expect(res.statusCode, res.body).toBe(type401(change) ? 401 : 403);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['www-authenticate']).toBe(type401(change) ? 'Bearer' : undefined);
  });

  it('refuses a good token signed with another key, and a tenant token (403: authenticated, not a system caller)', async () => {
    expect((await listTenants(await sign(good(), 'another-secret-that-is-also-long-enough-0000'))).statusCode).toBe(401);
    const admin = await login(t.app, 'sa', 'admin@sa.example');
    expect((await listTenants(admin.access_token)).statusCode).toBe(403);
  });

  it('checks the configured SYSTEM_TOKEN_ISSUER and SYSTEM_TOKEN_AUDIENCE', async () => {
    const keys = { ...testKeys(), systemToken: { issuer: 'platform-auth', audience: 'identity' } };
    const app = await buildApp({ keys, tenants: t.tenants, lifecycle: t.lifecycle, services: t.services, readiness: { database: databaseCheck(t.db.database.db) }, logger: false });
    try {
      expect((await listTenants(await sign({ ...good(), iss: 'platform-auth', aud: 'identity' }), app)).statusCode).toBe(200);
      expect((await listTenants(await sign(good()), app)).statusCode).toBe(401);
      // Our issuer follows the configuration.
      expect((await listTenants(await issueSystemToken(keys, { subject: 'test', ttlSeconds: 60 }), app)).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('our issuer refuses to make a token that lives over an hour', async () => {
    await expect(issueSystemToken(testKeys(), { subject: 'x', ttlSeconds: 3601 })).rejects.toThrow(RangeError);
  });

  it('the CLI issues tokens with iss, aud and at most an hour of life', { timeout: 60_000 }, async () => {
    const env = { JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn' };
    const issued = await runTs('src/cli.ts', ['token', 'system'], env);
    expect(issued.code, issued.stderr).toBe(0);
    const token = issued.stdout.trim();
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, number | string>;
    expect(payload).toMatchObject({ type: 'system', iss: 'auth-service', aud: 'system-service', sub: 'cli' });
    expect(Number(payload.exp) - Number(payload.iat)).toBe(3600);
    expect((await listTenants(token)).statusCode).toBe(200);
    const tooLong = await runTs('src/cli.ts', ['token', 'system', '--ttl', '7200'], env);
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toContain('--ttl must be an integer from 1 to 3600');
  });
});

/** Every refusal here is a 401, except a well-formed token of another type (403, as for tenant tokens). */
function type401(change: Record<string, unknown>): boolean {
  return !('type' in change);
}
