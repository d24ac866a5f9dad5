import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer } from './support/tenants.js';

/*
 * A tenant schema behind the running release (an upgrade not yet followed by `tenants migrate
 * --all`): a route that needs a table or column of a later migration answers 503
 * tenant.migrating, never 500; the routes of what it has keep answering, and its neighbour too.
 */
describe('a tenant schema behind this release', () => {
  const t = useTenants(['sba', 'sbb']);

  it('answers 503 tenant.migrating where a later table is missing, and the rest as usual', async () => {
    // As before the OpenID Connect migration: no oidc_clients table.
    await sql`DROP TABLE tenant_sba.oidc_clients CASCADE`.execute(t.db.database.db);
    const behind = await t.app.inject({ url: '/api/v1/tenants/sba/oidc/clients', headers: bearer(t.tokens.sba) });
    expect(behind.statusCode, behind.body).toBe(503);
    expect(behind.headers['content-type']).toMatch(/problem\+json/);
    expect(behind.json()).toMatchObject({ code: 'tenant.migrating' });
    expect(behind.json().detail).toContain('tenants migrate --all');
    expect((await t.app.inject({ url: '/api/v1/tenants/sba/users', headers: bearer(t.tokens.sba) })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/api/v1/tenants/sbb/oidc/clients', headers: bearer(t.tokens.sbb) })).statusCode).toBe(200);
  });

  it('answers 503 where a later column is missing', async () => {
    await sql`ALTER TABLE tenant_sba.users DROP COLUMN locale`.execute(t.db.database.db);
    const res = await t.app.inject({ url: '/api/v1/tenants/sba/me', headers: bearer(t.tokens.sba) });
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ code: 'tenant.migrating' });
    expect((await t.app.inject({ url: '/api/v1/tenants/sbb/me', headers: bearer(t.tokens.sbb) })).statusCode).toBe(200);
  });
});
