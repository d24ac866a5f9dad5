import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadJwtKeys } from '../src/auth/keys.js';
import { loadConfig } from '../src/config.js';
import { createTestApp, type TestApp } from './support/app.js';
import { bearer, login, seedTenant } from './support/tenants.js';

describe.each(['EdDSA', 'RS256'] as const)('%s tokens', (algorithm) => {
  let t: TestApp;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-jwks-'));
    t = await createTestApp({ keys: loadJwtKeys(loadConfig({ DATA_DIR: dataDir, JWT_ALGORITHM: algorithm })) });
    await seedTenant(t, 'keys_a');
    await seedTenant(t, 'keys_b');
  });
  afterAll(async () => {
    await t?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('publishes the public key, which verifies issued tokens without the secret', async () => {
    const jwks = (await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ alg: algorithm, use: 'sig', kid: expect.any(String) });
    expect(jwks.keys[0]).not.toHaveProperty('d'); // no private part
    const tokens = await login(t.app, 'keys_a', 'admin@keys_a.example');
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, createLocalJWKSet(jwks), { algorithms: [algorithm] });
    expect(protectedHeader.kid).toBe(jwks.keys[0].kid);
    expect(payload).toMatchObject({ type: 'tenant', tenant_slug: 'keys_a' });
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/keys_a/me', headers: bearer(tokens.access_token) })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/keys_b/me', headers: bearer(tokens.access_token) })).statusCode).toBe(403);

    // Algorithm confusion: the same claims signed with HS256, using the public key as the secret.
    const publicPem = (t.keys.verificationKey as KeyObject).export({ type: 'spki', format: 'pem' });
    const forged = await new SignJWT(decodeJwt(tokens.access_token)).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(String(publicPem)));
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/keys_a/me', headers: bearer(forged) })).statusCode).toBe(401);
  });
});

describe('HMAC tokens', () => {
  it('publish no key', async () => {
    const t = await createTestApp();
    try {
      expect((await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json()).toEqual({ keys: [] });
    } finally {
      await t.close();
    }
  });
});
