import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import type { Config } from '../src/config.js';
import { createDatabase, tenantDb } from '../src/db/database.js';
import { whoAmI } from '../src/db/roles.js';
import { checkRoles } from '../src/runtime.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { operatorRoles, type OperatorRoles } from './support/roles.js';
import { bearer, PASSWORD } from './support/tenants.js';
import { withDatabase } from './support/urls.js';

/*
 * The two database roles on a PostgreSQL set up as docs/OPERATIONS.md tells an operator of a
 * managed database: an owner that migrates, a runtime role that answers requests and can do
 * nothing else. Two tenants, the whole API on the runtime role, here with the runtime role
 * holding the tenants' rights itself (DATABASE_TENANT_ROLES=false; tenant-roles.test.ts: on).
 */

let r: OperatorRoles;
let owner: OperatorRoles['owner'];
let runtime: OperatorRoles['runtime'];
let app: OperatorRoles['app'];
let ownerRole: string;
let runtimeRole: string;
let database: string;
const runtimeTries = (statement: string) => r.runtimeTries(statement);

beforeAll(async () => {
  r = await operatorRoles(['rla', 'rlb'], { tenantRoles: false });
  ({ owner, runtime, app, ownerRole, runtimeRole, database } = r);
});

afterAll(async () => {
  await r?.close();
});

describe('the runtime role', () => {
  it('is neither superuser nor owner', async () => {
    expect(await whoAmI(runtime.db)).toEqual({ name: runtimeRole, superuser: false });
    const owners = await sql<{ owner: string }>`SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relnamespace = 'tenant_rla'::regnamespace`.execute(runtime.db);
    expect(owners.rows.map((r) => r.owner)).toEqual([ownerRole]);
  });

  it('answers the API: login, a user created and listed, its audit rows, each tenant apart', async () => {
    const login = await app.inject({ method: 'POST', url: '/api/v1/tenants/rla/auth/login', payload: { email: 'admin@rla.example', password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const token = login.json().access_token as string;
    const created = await app.inject({ method: 'POST', url: '/api/v1/tenants/rla/users', headers: bearer(token), payload: { email: 'new@rla.example', password: 'Another password 1!' } });
    expect(created.statusCode).toBe(201);
    expect((await app.inject({ method: 'PATCH', url: `/api/v1/tenants/rla/users/${created.json().id}`, headers: bearer(token), payload: { first_name: 'Ann' } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: `/api/v1/tenants/rla/users/${created.json().id}`, headers: bearer(token) })).statusCode).toBe(204);
    const audit = await app.inject({ method: 'GET', url: '/api/v1/tenants/rla/audit-logs?action=users.create', headers: bearer(token) });
    expect(audit.json().items.map((r: { entity_id: string }) => r.entity_id)).toContain(created.json().id);
    expect((await app.inject({ method: 'GET', url: '/api/v1/tenants/rlb/users', headers: bearer(token) })).statusCode).toBe(403);
    const other = await app.inject({ method: 'POST', url: '/api/v1/tenants/rlb/auth/login', payload: { email: 'admin@rlb.example', password: PASSWORD } });
    const users = await app.inject({ method: 'GET', url: '/api/v1/tenants/rlb/users', headers: bearer(other.json().access_token) });
    expect(users.json().items.map((u: { email: string }) => u.email)).toEqual(['admin@rlb.example']);
  });

  it('reads and appends audit rows, and can neither change nor remove them', async () => {
    const audit = tenantDb(runtime.db, 'tenant_rla');
    expect((await audit.selectFrom('audit_logs').select('id').execute()).length).toBeGreaterThan(0);
    // 42501: insufficient privilege, refused by PostgreSQL before the trigger is asked.
    expect(await runtimeTries(`UPDATE tenant_rla.audit_logs SET action = 'x'`)).toBe('42501');
    expect(await runtimeTries(`DELETE FROM tenant_rla.audit_logs`)).toBe('42501');
    expect(await runtimeTries(`TRUNCATE tenant_rla.audit_logs`)).toBe('42501');
    expect(await runtimeTries(`ALTER TABLE tenant_rla.audit_logs DISABLE TRIGGER USER`)).toBe('42501');
    expect(await runtimeTries(`SET session_replication_role = replica`)).toBe('42501');
    expect(await runtimeTries(`DROP TABLE tenant_rla.users`)).toBe('42501');
  });

  it('cannot create a schema, read passwords or change a table', async () => {
    expect(await runtimeTries(`CREATE SCHEMA tenant_evil`)).toBe('42501');
    expect(await runtimeTries(`SELECT rolpassword FROM pg_authid`)).toBe('42501');
    expect(await runtimeTries(`ALTER TABLE tenant_rla.users ADD COLUMN x int`)).toBe('42501');
    expect(await runtimeTries(`CREATE TABLE tenant_rla.evil (id int)`)).toBe('42501');
    expect(await runtimeTries(`UPDATE shared.tenants SET name = 'x'`)).toBe('42501');
  });

  it('is granted its rights on schemas made before it existed', async () => {
    // A schema the owner migrated without a runtime role (as before the service had one).
    const bare = new SchemaManager(owner.db);
    await bare.initializeTenantSchema(null, 'tenant_rlc');
    await owner.db.withSchema('shared').updateTable('tenant_schemas').set({ tenant_id: null }).where('schema_name', '=', 'tenant_rlc').execute();
    expect(await runtimeTries(`SELECT 1 FROM tenant_rlc.users`)).toBe('42501');
    const schemas = new SchemaManager(owner.db, undefined, { runtimeRole });
    expect(await schemas.grantRuntimeWhereMissing()).toBe(1);
    expect(await runtimeTries(`SELECT 1 FROM tenant_rlc.users`)).toBe('ok');
    expect(await runtimeTries(`DELETE FROM tenant_rlc.audit_logs`)).toBe('42501');
    expect(await schemas.grantRuntimeWhereMissing()).toBe(0);
  });
});

describe('production', () => {
  it('refuses a superuser runtime role unless DATABASE_ALLOW_SUPERUSER=true', async () => {
    const superuser = createDatabase({ url: withDatabase(inject('pgUrl'), database), max: 1, connectionTimeoutMs: 10_000 });
    try {
      await expect(checkRoles(superuser, owner, { environment: 'production', allowSuperuser: false } as Config)).rejects.toThrow(/superuser.*DATABASE_ALLOW_SUPERUSER=true/);
      await expect(checkRoles(superuser, owner, { environment: 'production', allowSuperuser: true } as Config)).resolves.toBeTypeOf('string');
      // Outside production a superuser is only what the developer chose.
      await expect(checkRoles(superuser, superuser, { environment: 'development', allowSuperuser: false } as Config)).resolves.toBeUndefined();
    } finally {
      await superuser.close();
    }
  });
});
