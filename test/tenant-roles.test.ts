import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { tenantDb } from '../src/db/database.js';
import { tenantMigrations } from '../src/db/migrations/index.js';
import { tenantRoleNamer } from '../src/db/roles.js';
import { checkRoles } from '../src/runtime.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { asSuperuser, operatorRoles, type OperatorRoles } from './support/roles.js';
import { bearer, PASSWORD } from './support/tenants.js';

/*
 * Per-tenant roles (the default): each tenant schema has its own NOLOGIN role; the runtime role
 * (NOINHERIT, as docs/OPERATIONS.md sets it up) holds no right on any tenant schema and sets
 * the tenant's role for each statement. Two tenants and more, on the operator's roles.
 */

let r: OperatorRoles;
let roleOf: (schema: string) => string;

beforeAll(async () => {
  r = await operatorRoles(['tra', 'trb'], { tenantRoles: true });
  roleOf = tenantRoleNamer(r.database);
});
afterAll(async () => {
  await r?.close();
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: { code?: string }) => error.code ?? 'error',
  );

async function roleState(role: string) {
  const rows = await sql<{ login: boolean; member: boolean; usage: boolean }>`
    SELECT rolcanlogin AS login, pg_has_role(${r.runtimeRole}, oid, 'MEMBER') AS member, pg_has_role(${r.runtimeRole}, oid, 'USAGE') AS usage
    FROM pg_roles WHERE rolname = ${role}`.execute(r.owner.db);
  return rows.rows[0];
}

describe('each tenant schema has its own role', () => {
  it('a NOLOGIN role granted to the runtime role, which holds no right on any tenant schema itself', async () => {
    for (const schema of ['tenant_tra', 'tenant_trb']) {
      // Member (it may set the role), without the rights until it does (NOINHERIT).
      expect(await roleState(roleOf(schema))).toEqual({ login: false, member: true, usage: false });
      expect(await r.runtimeTries(`SELECT 1 FROM ${schema}.users`)).toBe('42501');
      expect(await r.runtimeTries(`SELECT 1 FROM ${schema}.users`, [`SET ROLE "${roleOf(schema)}"`])).toBe('ok');
    }
  });

  it('the API answers for each tenant apart: login, refresh, users created, changed, listed and deleted, audit rows', async () => {
    const created: string[] = [];
    for (const slug of ['tra', 'trb']) {
      const login = await r.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/login`, payload: { email: `admin@${slug}.example`, password: PASSWORD } });
      expect(login.statusCode).toBe(200);
      const token = login.json().access_token as string;
      const refreshed = await r.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/refresh`, payload: { refresh_token: login.json().refresh_token } });
      expect(refreshed.statusCode).toBe(200);
      const made = await r.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/users`, headers: bearer(token), payload: { email: `new@${slug}.example`, password: 'Another password 1!' } });
      expect(made.statusCode).toBe(201);
      const id = made.json().id as string;
      created.push(id);
      expect((await r.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/users/${id}`, headers: bearer(token) })).json().email).toBe(`new@${slug}.example`);
      expect((await r.app.inject({ method: 'PATCH', url: `/api/v1/tenants/${slug}/users/${id}`, headers: bearer(token), payload: { first_name: 'Ann' } })).statusCode).toBe(200);
      const list = await r.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/users?sort=email`, headers: bearer(token) });
      expect(list.json().items.map((u: { email: string }) => u.email)).toEqual([`admin@${slug}.example`, `new@${slug}.example`]);
      expect((await r.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/me`, headers: bearer(token) })).statusCode).toBe(200);
      expect((await r.app.inject({ method: 'DELETE', url: `/api/v1/tenants/${slug}/users/${id}`, headers: bearer(token) })).statusCode).toBe(204);
      const audit = await r.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/audit-logs?action=users.create`, headers: bearer(token) });
      // Its own creations (the seeded admin and this user), none of the other tenant's.
      const ids = audit.json().items.map((row: { entity_id: string }) => row.entity_id);
      expect(ids).toContain(id);
      expect(ids).toHaveLength(2);
      if (created.length === 2) expect(ids).not.toContain(created[0]);
    }
  });

  it("a statement through one tenant's handle that names another tenant's schema fails inside PostgreSQL", async () => {
    const tra = tenantDb(r.runtime.db, 'tenant_tra');
    expect(await codeOf(sql`SELECT email FROM tenant_tra.users`.execute(tra))).toBe('ok');
    // A single statement, and the same inside a transaction: 42501, insufficient privilege.
    expect(await codeOf(sql`SELECT email FROM tenant_trb.users`.execute(tra))).toBe('42501');
    expect(await codeOf(tra.transaction().execute((trx) => sql`SELECT email FROM tenant_trb.users`.execute(trx)))).toBe('42501');
    expect(await codeOf(sql`UPDATE tenant_trb.users SET first_name = 'x'`.execute(tra))).toBe('42501');
    // The role holds for its statement or transaction only: the next one on the pool is the runtime role again.
    expect(await codeOf(sql`SELECT 1 FROM tenant_tra.users`.execute(r.runtime.db))).toBe('42501');
    const who = await sql<{ user: string }>`SELECT current_user AS user`.execute(tra);
    expect(who.rows[0]!.user).toBe(roleOf('tenant_tra'));
    expect((await sql<{ user: string }>`SELECT current_user AS user`.execute(r.runtime.db)).rows[0]!.user).toBe(r.runtimeRole);
  });

  it('forks, imports, restores and deletes tenants with their own roles: the runtime role serves them, holding no right itself', async () => {
    const fork = await r.lifecycle.fork('tra', { slug: 'tra_fork' });
    const exported = await r.lifecycle.export('trb');
    const copy = await r.lifecycle.import(exported.stream(), { slug: 'trb_copy' });
    for (const [tenant, email] of [[fork, 'admin@tra.example'], [copy, 'admin@trb.example']] as const) {
      expect(await roleState(roleOf(tenant.schema_name))).toEqual({ login: false, member: true, usage: false });
      expect(await r.runtimeTries(`SELECT 1 FROM ${tenant.schema_name}.users`)).toBe('42501');
      const login = await r.app.inject({ method: 'POST', url: `/api/v1/tenants/${tenant.slug}/auth/login`, payload: { email, password: PASSWORD } });
      expect(login.statusCode, login.body).toBe(200);
      expect((await r.app.inject({ method: 'GET', url: `/api/v1/tenants/${tenant.slug}/users`, headers: bearer(login.json().access_token) })).statusCode).toBe(200);
    }
    const backup = await r.lifecycle.backup('tra');
    await r.lifecycle.restore('tra', backup.id);
    expect((await r.app.inject({ method: 'POST', url: '/api/v1/tenants/tra/auth/login', payload: { email: 'admin@tra.example', password: PASSWORD } })).statusCode).toBe(200);
    await r.lifecycle.delete('tra_fork', { backup: false });
    expect(await roleState(roleOf('tenant_tra_fork'))).toBeUndefined();
  });

  it('sets the role without a server warning, for ad hoc and prepared statements and transactions alike', async () => {
    const notices: string[] = [];
    const emit = pg.Client.prototype.emit;
    pg.Client.prototype.emit = function (this: pg.Client, event: string | symbol, ...args: unknown[]) {
      if (event === 'notice') notices.push(String((args[0] as { message?: string }).message));
      return emit.call(this, event, ...args);
    };
    try {
      const tra = tenantDb(r.runtime.db, 'tenant_tra');
      for (let turn = 0; turn < 3; turn++) {
        expect((await sql<{ user: string }>`SELECT current_user AS user`.execute(tra)).rows[0]!.user).toBe(roleOf('tenant_tra'));
        expect((await tra.selectFrom('users').select('email').where('email', '=', 'admin@tra.example').execute()).length).toBe(1);
        const inside = await tra.transaction().execute((trx) => sql<{ user: string }>`SELECT current_user AS user`.execute(trx));
        expect(inside.rows[0]!.user).toBe(roleOf('tenant_tra'));
      }
    } finally {
      pg.Client.prototype.emit = emit;
    }
    expect(notices).toEqual([]);
  });

  it("prepares the role statement once per connection and binds each tenant's role to it", async () => {
    const tra = tenantDb(r.runtime.db, 'tenant_tra');
    const trb = tenantDb(r.runtime.db, 'tenant_trb');
    for (let turn = 0; turn < 5; turn++) {
      expect((await sql<{ user: string }>`SELECT current_user AS user`.execute(tra)).rows[0]!.user).toBe(roleOf('tenant_tra'));
      expect((await sql<{ user: string }>`SELECT current_user AS user`.execute(trb)).rows[0]!.user).toBe(roleOf('tenant_trb'));
    }
    // Every connection that ran a tenant statement holds the one statement, under one name.
    const held = await sql<{ name: string; statement: string; n: number }>`
      SELECT name, statement, (SELECT count(*)::int FROM pg_prepared_statements p WHERE p.statement LIKE '%set_config%') AS n
      FROM pg_prepared_statements WHERE statement LIKE '%set_config%'`.execute(tra);
    expect(held.rows).toEqual([{ name: 'ss_set_role', statement: "SELECT set_config('role', $1, true)", n: 1 }]);
  });

  it("a tenant's role reads and appends its audit rows, and can neither change them nor the table", async () => {
    const setRole = [`SET ROLE "${roleOf('tenant_tra')}"`];
    expect(await r.runtimeTries(`SELECT count(*) FROM tenant_tra.audit_logs`, setRole)).toBe('ok');
    expect(await r.runtimeTries(`UPDATE tenant_tra.audit_logs SET action = 'x'`, setRole)).toBe('42501');
    expect(await r.runtimeTries(`DELETE FROM tenant_tra.audit_logs`, setRole)).toBe('42501');
    expect(await r.runtimeTries(`TRUNCATE tenant_tra.audit_logs`, setRole)).toBe('42501');
    expect(await r.runtimeTries(`ALTER TABLE tenant_tra.audit_logs DISABLE TRIGGER USER`, setRole)).toBe('42501');
    expect(await r.runtimeTries(`CREATE TABLE tenant_tra.evil (id int)`, setRole)).toBe('42501');
  });
});

describe("a tenant's role goes with its schema", () => {
  it('made with a spare schema, renamed when a tenant takes the spare, dropped with the schema', async () => {
    const spares = new SchemaManager(r.owner.db, undefined, { runtimeRole: r.runtimeRole, tenantRole: roleOf, spares: 1 });
    await spares.replenishSpares();
    const spare = await r.owner.db.withSchema('shared').selectFrom('tenant_schemas').select('schema_name').where('is_spare', '=', true).executeTakeFirstOrThrow();
    expect(await roleState(roleOf(spare.schema_name))).toEqual({ login: false, member: true, usage: false });
    await spares.close();

    const taken = new SchemaManager(r.owner.db, undefined, { runtimeRole: r.runtimeRole, tenantRole: roleOf });
    await taken.initializeTenantSchema(null, 'tenant_trc');
    expect(await r.owner.db.withSchema('shared').selectFrom('tenant_schemas').select('schema_name').where('is_spare', '=', true).execute()).toEqual([]);
    expect(await roleState(roleOf(spare.schema_name))).toBeUndefined();
    expect(await roleState(roleOf('tenant_trc'))).toEqual({ login: false, member: true, usage: false });
    expect((await tenantDb(r.runtime.db, 'tenant_trc').selectFrom('roles').select('name').execute()).length).toBeGreaterThan(0);

    expect(await taken.dropSchema('tenant_trc')).toBe(true);
    expect(await roleState(roleOf('tenant_trc'))).toBeUndefined();
  });

  it("a table a later migration adds is granted to each tenant's role", async () => {
    const latest = Math.max(...tenantMigrations.map((m) => m.version));
    const next = new SchemaManager(r.owner.db, [...tenantMigrations, { version: latest + 1, name: 'notes_extra', statements: ({ schema }) => [schema.createTable('extra_notes').addColumn('id', 'integer', (c) => c.primaryKey())] }], {
      runtimeRole: r.runtimeRole,
      tenantRole: roleOf,
    });
    const result = await next.migrateAll({ concurrency: 2 });
    expect(result.failed).toEqual([]);
    for (const schema of ['tenant_tra', 'tenant_trb']) {
      const tdb = tenantDb(r.runtime.db, schema);
      expect(await codeOf(sql`INSERT INTO ${sql.id(schema, 'extra_notes')} VALUES (1)`.execute(tdb))).toBe('ok');
      expect(await r.runtimeTries(`SELECT 1 FROM ${schema}.extra_notes`)).toBe('42501');
    }
  });

  it('schemas made before per-tenant roles get theirs at start, and the runtime role loses its own rights on them', async () => {
    // As the service left a schema with DATABASE_TENANT_ROLES=false: the runtime role's own rights.
    const direct = new SchemaManager(r.owner.db, undefined, { runtimeRole: r.runtimeRole, tenantRole: undefined });
    await direct.initializeTenantSchema(null, 'tenant_trd');
    expect(await r.runtimeTries(`SELECT 1 FROM tenant_trd.users`)).toBe('ok');
    expect(await roleState(roleOf('tenant_trd'))).toBeUndefined();

    const schemas = new SchemaManager(r.owner.db, undefined, { runtimeRole: r.runtimeRole, tenantRole: roleOf });
    expect(await schemas.grantRuntimeWhereMissing()).toBe(1);
    expect(await roleState(roleOf('tenant_trd'))).toEqual({ login: false, member: true, usage: false });
    expect(await r.runtimeTries(`SELECT 1 FROM tenant_trd.users`)).toBe('42501');
    expect(await codeOf(sql`SELECT 1 FROM tenant_trd.users`.execute(tenantDb(r.runtime.db, 'tenant_trd')))).toBe('ok');
    expect(await schemas.grantRuntimeWhereMissing()).toBe(0);
  });
});

describe('the runtime role', () => {
  it('must not inherit the rights of the roles granted to it: the service refuses to start', async () => {
    const config = { environment: 'production', allowSuperuser: false, tenantRoles: true } as Config;
    await asSuperuser([`ALTER ROLE ${r.runtimeRole} INHERIT`]);
    try {
      await expect(checkRoles(r.runtime, r.owner, config)).rejects.toThrow(/inherits.*NOINHERIT.*DATABASE_TENANT_ROLES=false/);
      // Without per-tenant roles it holds the rights itself, and inheriting changes nothing.
      await expect(checkRoles(r.runtime, r.owner, { ...config, tenantRoles: false })).resolves.toBe(r.runtimeRole);
    } finally {
      await asSuperuser([`ALTER ROLE ${r.runtimeRole} NOINHERIT`]);
    }
    await expect(checkRoles(r.runtime, r.owner, config)).resolves.toBe(r.runtimeRole);
  });
});
