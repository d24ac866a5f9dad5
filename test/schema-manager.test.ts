import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ROLES, PERMISSION_CATALOGUE } from '../src/access/catalogue.js';
import { tenantDb } from '../src/db/database.js';
import { tenantMigrations } from '../src/db/migrations/index.js';
import type { TenantMigration } from '../src/db/migrations/migration.js';
import { tenantColumns } from '../src/db/columns.js';
import { DomainError } from '../src/errors.js';
import { DEFAULT_SETTINGS } from '../src/settings/defaults.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

let t: TestDatabase;
let manager: SchemaManager;
const ALL_TABLES = Object.keys(tenantColumns).sort();

beforeAll(async () => {
  t = await createTestDatabase();
  manager = new SchemaManager(t.database.db);
});
afterAll(async () => t?.drop());

async function schemaExists(name: string): Promise<boolean> {
  const r = await sql<{ found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${name}) AS found`.execute(t.database.db);
  return r.rows[0]!.found;
}

async function stateOf(schema: string) {
  return t.database.db.withSchema('shared').selectFrom('tenant_schemas').selectAll().where('schema_name', '=', schema).executeTakeFirst();
}

describe('initializeTenantSchema', () => {
  it('creates every table, the default data, and records the schema as ready', async () => {
    const result = await manager.initializeTenantSchema(null, 'tenant_alpha');
    expect(result.tables).toEqual(ALL_TABLES);
    expect(result.created_tables).toEqual(ALL_TABLES);
    expect(result.tables).toHaveLength(Object.keys(tenantColumns).length);
    expect(result.schema_version).toBe(manager.latestVersion);
    expect(result.applied).toEqual(tenantMigrations.map((m) => `${m.version}_${m.name}`));
    const state = await stateOf('tenant_alpha');
    expect(state).toMatchObject({ status: 'ready', version: manager.latestVersion, last_error: null });
    expect(state!.last_duration_ms).toBeGreaterThanOrEqual(0);

    const db = tenantDb(t.database.db, 'tenant_alpha');
    const roles = await db.selectFrom('roles').select(['name', 'priority', 'is_system']).orderBy('priority', 'desc').execute();
    expect(roles).toEqual(DEFAULT_ROLES.map((r) => ({ name: r.name, priority: r.priority, is_system: true })));
    const permissions = await db.selectFrom('permissions').select('name').execute();
    expect(permissions.map((p) => p.name).sort()).toEqual(PERMISSION_CATALOGUE.map((p) => p.name).sort());
    const settings = await db.selectFrom('settings').select(['key', 'value', 'type']).execute();
    expect(settings).toHaveLength(DEFAULT_SETTINGS.length);
    expect(settings.find((s) => s.key === 'password.min_length')).toEqual({ key: 'password.min_length', value: 12, type: 'number' });
    expect(settings.find((s) => s.key === 'session.access_token_ttl_seconds')?.value).toBe(900);
  });

  it('grants the documented defaults: admin *, viewer never audit logs, sessions or API keys', async () => {
    const grants = await tenantDb(t.database.db, 'tenant_alpha')
      .selectFrom('role_permissions as rp')
      .innerJoin('roles as r', 'r.id', 'rp.role_id')
      .innerJoin('permissions as p', 'p.id', 'rp.permission_id')
      .select(['r.name as role', 'p.name as permission', 'rp.effect'])
      .execute();
    const of = (role: string) => grants.filter((g) => g.role === role).map((g) => g.permission);
    expect(of('admin')).toEqual(['*']);
    expect(of('viewer')).toContain('users.read');
    expect(of('viewer').filter((p) => /^(audit_logs|sessions|api_keys)\./.test(p))).toEqual([]);
    expect(of('viewer').every((p) => p.endsWith('.read'))).toBe(true);
    expect(of('manager')).toEqual(expect.arrayContaining(['audit_logs.read', 'users.create', 'users.update', 'teams.create', 'notes.update']));
    expect(of('manager')).not.toContain('users.delete');
    expect(of('user')).toEqual(expect.arrayContaining(['users.read', 'teams.read', 'notes.create', 'tasks.update']));
    expect(of('user')).not.toContain('users.create');
    expect(grants.every((g) => g.effect === 'allow')).toBe(true);
  });

  it('gives every foreign key an index that starts with its columns', async () => {
    const unindexed = await sql<{ table: string; constraint: string }>`
      SELECT c.conrelid::regclass::text AS table, c.conname AS constraint
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'tenant_alpha' AND c.contype = 'f'
        AND NOT EXISTS (
          SELECT 1 FROM pg_index i
          WHERE i.indrelid = c.conrelid
            AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)`.execute(t.database.db);
    expect(unindexed.rows).toEqual([]);
    const fkCount = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'tenant_alpha' AND c.contype = 'f'`.execute(t.database.db);
    expect(fkCount.rows[0]!.n).toBeGreaterThan(20);
  });

  it('keeps no foreign key pointing outside the tenant schema', async () => {
    const outside = await sql<{ conname: string }>`
      SELECT c.conname FROM pg_constraint c
      JOIN pg_namespace n ON n.oid = c.connamespace
      JOIN pg_class target ON target.oid = c.confrelid
      JOIN pg_namespace tn ON tn.oid = target.relnamespace
      WHERE n.nspname = 'tenant_alpha' AND c.contype = 'f' AND tn.nspname <> 'tenant_alpha'`.execute(t.database.db);
    expect(outside.rows).toEqual([]);
  });

  it('enforces constraints in the database: live-row uniqueness, enums, immutable audit trail', async () => {
    const db = tenantDb(t.database.db, 'tenant_alpha');
    const first = await db.insertInto('users').values({ email: 'Ann@Example.com' }).returning('id').executeTakeFirstOrThrow();
    await expect(db.insertInto('users').values({ email: 'ann@example.com' }).execute()).rejects.toMatchObject({ code: '23505' });
    await db.updateTable('users').set({ deleted_at: new Date() }).where('id', '=', first.id).execute();
    await db.insertInto('users').values({ email: 'ann@example.com' }).execute();
    await expect(db.insertInto('users').values({ email: 'bob@example.com', status: 'superuser' }).execute()).rejects.toMatchObject({ code: '23514' });
    await expect(db.insertInto('settings').values({ key: 'x.y', value: '"text"', type: 'number', category: 'x' }).execute()).rejects.toMatchObject({ code: '23514' });

    const entry = await db.insertInto('audit_logs').values({ actor_type: 'system', action: 'test.write', seq: '1', hash: 'x' }).returning('id').executeTakeFirstOrThrow();
    // The tenant's role may not change audit rows at all; the schema's owner is stopped by the trigger.
    await expect(db.updateTable('audit_logs').set({ action: 'tampered' }).where('id', '=', entry.id).execute()).rejects.toMatchObject({ code: '42501' });
    await expect(db.deleteFrom('audit_logs').where('id', '=', entry.id).execute()).rejects.toMatchObject({ code: '42501' });
    await expect(sql`UPDATE tenant_alpha.audit_logs SET action = 'tampered' WHERE id = ${entry.id}`.execute(t.database.db)).rejects.toThrow(/immutable/);
    await expect(sql`DELETE FROM tenant_alpha.audit_logs WHERE id = ${entry.id}`.execute(t.database.db)).rejects.toThrow(/immutable/);
  });

  it('is idempotent: a second run creates nothing and duplicates no default row', async () => {
    const db = tenantDb(t.database.db, 'tenant_alpha');
    const count = async () =>
      Promise.all(['roles', 'permissions', 'role_permissions', 'settings'].map(async (table) => {
        const r = await db.selectFrom(table as 'roles').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
        return Number(r.n);
      }));
    const before = await count();
    const again = await manager.initializeTenantSchema(null, 'tenant_alpha');
    expect(again.created_tables).toEqual([]);
    expect(again.applied).toEqual([]);
    expect(again.tables).toEqual(ALL_TABLES);
    expect(await count()).toEqual(before);
  });

  it('serializes concurrent initializations of one schema', async () => {
    const results = await Promise.all([1, 2, 3].map(() => manager.initializeTenantSchema(null, 'tenant_race')));
    const created = results.map((r) => r.created_tables.length).sort((a, b) => a - b);
    expect(created).toEqual([0, 0, ALL_TABLES.length]);
    const roles = await tenantDb(t.database.db, 'tenant_race').selectFrom('roles').select('name').execute();
    expect(roles).toHaveLength(DEFAULT_ROLES.length);
  });

  it.each([
    ['tenant_x; DROP SCHEMA shared CASCADE'],
    ['tenant"x'],
    ["tenant'x"],
    ['Tenant_Upper'],
    ['tenant_é'],
    ['x'.repeat(64)],
    [''],
    ['public'],
    ['shared'],
    ['tenant_template'],
    ['information_schema'],
    ['pg_catalog'],
    ['pg_anything'],
  ])('refuses the schema name %j and creates nothing', async (name) => {
    const before = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace`.execute(t.database.db);
    await expect(manager.initializeTenantSchema(null, name)).rejects.toBeInstanceOf(DomainError);
    const after = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace`.execute(t.database.db);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    expect(await schemaExists('shared')).toBe(true);
  });
});

describe('tenant isolation', () => {
  it('keeps rows of one tenant out of another, and allows the same email in both', async () => {
    await manager.initializeTenantSchema(null, 'tenant_one');
    await manager.initializeTenantSchema(null, 'tenant_two');
    const one = tenantDb(t.database.db, 'tenant_one');
    const two = tenantDb(t.database.db, 'tenant_two');
    await one.insertInto('users').values({ email: 'same@example.com', first_name: 'One' }).execute();
    await two.insertInto('users').values({ email: 'same@example.com', first_name: 'Two' }).execute();
    await one.insertInto('users').values({ email: 'only-one@example.com' }).execute();
    expect((await one.selectFrom('users').select('email').orderBy('email').execute()).map((u) => u.email)).toEqual(['only-one@example.com', 'same@example.com']);
    expect(await two.selectFrom('users').select(['email', 'first_name']).execute()).toEqual([{ email: 'same@example.com', first_name: 'Two' }]);
    expect(one.selectFrom('users').select('id').compile().sql).toContain('"tenant_one"."users"');
  });
});

describe('migration 5 (session_rotation_in_place)', () => {
  it('keeps the sessions of schemas at version 4 and takes the token hashes out of every index', async () => {
    const v4 = new SchemaManager(t.database.db, tenantMigrations.filter((m) => m.version <= 4));
    const schemas = ['tenant_v4_a', 'tenant_v4_b'];
    for (const schema of schemas) {
      await v4.initializeTenantSchema(null, schema);
      const db = tenantDb(t.database.db, schema);
      const user = await db.insertInto('users').values({ email: `someone@${schema}.example` }).returning('id').executeTakeFirstOrThrow();
      await db.insertInto('user_sessions').values({ user_id: user.id, refresh_token_hash: `${schema}-current`, previous_refresh_token_hash: `${schema}-previous`, expires_at: new Date(Date.now() + 3_600_000) }).execute();
    }
    const indexes = async (schema: string) =>
      (await sql<{ indexname: string }>`SELECT indexname FROM pg_indexes WHERE schemaname = ${schema} AND tablename = 'user_sessions' ORDER BY indexname`.execute(t.database.db)).rows.map((r) => r.indexname);
    expect(await indexes('tenant_v4_a')).toContain('user_sessions_refresh_token_hash_uq');

    for (const schema of schemas) {
      const result = await manager.migrateTenant(schema);
      expect(result).toMatchObject({ schema_version: manager.latestVersion, applied: tenantMigrations.filter((m) => m.version > 4).map((m) => `${m.version}_${m.name}`) });
      expect(await indexes(schema)).toEqual(['user_sessions_expires_at_idx', 'user_sessions_pkey', 'user_sessions_user_id_idx']);
      const options = await sql<{ reloptions: string[] }>`SELECT reloptions FROM pg_class WHERE oid = ${`${schema}.user_sessions`}::regclass`.execute(t.database.db);
      expect(options.rows[0]!.reloptions).toEqual(['fillfactor=80']);
      // Each schema keeps its own session, as it was.
      const sessions = await tenantDb(t.database.db, schema).selectFrom('user_sessions').select(['refresh_token_hash', 'previous_refresh_token_hash']).execute();
      expect(sessions).toEqual([{ refresh_token_hash: `${schema}-current`, previous_refresh_token_hash: `${schema}-previous` }]);
      expect((await manager.migrateTenant(schema)).applied).toEqual([]);
    }
  });
});

describe('getSchemaInfo, listTablesInSchema, dropSchema', () => {
  it('describes a provisioned schema and an absent one', async () => {
    await manager.initializeTenantSchema(null, 'tenant_info');
    const info = await manager.getSchemaInfo('tenant_info');
    expect(info).toMatchObject({ schema_name: 'tenant_info', exists: true, status: 'ready', version: manager.latestVersion, latest_version: manager.latestVersion });
    expect(info.tables.map((x) => x.name)).toEqual(ALL_TABLES);
    expect(info.total_size_bytes).toBeGreaterThan(0);
    expect(await manager.listTablesInSchema('tenant_info')).toEqual(ALL_TABLES);

    const absent = await manager.getSchemaInfo('tenant_nothing_here');
    expect(absent).toMatchObject({ exists: false, status: 'absent', version: 0, tables: [] });
  });

  it('drops a schema and its state record', async () => {
    await manager.initializeTenantSchema(null, 'tenant_doomed');
    expect(await manager.dropSchema('tenant_doomed')).toBe(true);
    expect(await schemaExists('tenant_doomed')).toBe(false);
    expect(await stateOf('tenant_doomed')).toBeUndefined();
    expect(await manager.dropSchema('tenant_doomed')).toBe(false);
    await expect(manager.dropSchema('shared')).rejects.toBeInstanceOf(DomainError);
  });
});

describe('migrateAll', () => {
  const addNickname: TenantMigration = {
    version: 1000,
    name: 'add_users_nickname',
    statements: ({ schema }) => [schema.alterTable('users').addColumn('nickname', 'text')],
  };

  it('applies a new migration to 50 tenants, bounded concurrency, and reports progress', async () => {
    const fresh = await createTestDatabase();
    try {
      const base = new SchemaManager(fresh.database.db);
      const schemas = Array.from({ length: 50 }, (_, i) => `tenant_m${String(i).padStart(2, '0')}`);
      for (const s of schemas) await base.initializeTenantSchema(null, s);

      const next = new SchemaManager(fresh.database.db, [...tenantMigrations, addNickname]);
      const progress: number[] = [];
      const result = await next.migrateAll({
        concurrency: 4,
        onProgress: (p) => {
          progress.push(p.done);
          expect(p.ok).toBe(true);
        },
      });
      expect(result).toMatchObject({ total: 50, migrated: 50, up_to_date: 0, failed: [] });
      expect(progress).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));

      const columns = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'`.execute(fresh.database.db);
      expect(columns.rows[0]!.n).toBe(50);
      const versions = await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').select(['version', 'status']).distinct().execute();
      expect(versions).toEqual([{ version: 1000, status: 'ready' }]);

      // More workers than pool connections: no deadlock, and never more connections than allowed.
      const more = await new SchemaManager(fresh.database.db, [...tenantMigrations, { ...addNickname, version: 1001, name: 'more', statements: ({ schema }) => [schema.alterTable('users').addColumn('nickname2', 'text')] }]).migrateAll({ concurrency: 8 });
      expect(more).toMatchObject({ migrated: 50, failed: [] });
      expect(fresh.database.pool.totalCount).toBeLessThanOrEqual(5);
    } finally {
      await fresh.drop();
    }
  });

  it('marks a failing tenant failed with its error while the others go on, and resumes', async () => {
    const fresh = await createTestDatabase();
    try {
      const base = new SchemaManager(fresh.database.db);
      for (const s of ['tenant_good1', 'tenant_bad', 'tenant_good2']) await base.initializeTenantSchema(null, s);
      const breaksOne: TenantMigration = {
        version: 1000,
        name: 'breaks_one_tenant',
        statements: ({ schema, schemaName }) =>
          schemaName === 'tenant_bad' ? [schema.alterTable('no_such_table').addColumn('x', 'text')] : [schema.alterTable('users').addColumn('nickname', 'text')],
      };
      const result = await new SchemaManager(fresh.database.db, [...tenantMigrations, breaksOne]).migrateAll({ concurrency: 2 });
      expect(result.migrated).toBe(2);
      expect(result.failed).toHaveLength(1);
      expect(result.failed[0]).toMatchObject({ schema_name: 'tenant_bad', error: expect.stringMatching(/no_such_table/) });

      const states = await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').select(['schema_name', 'status', 'version', 'last_error']).orderBy('schema_name').execute();
      expect(states).toEqual([
        { schema_name: 'tenant_bad', status: 'failed', version: manager.latestVersion, last_error: expect.stringMatching(/no_such_table/) },
        { schema_name: 'tenant_good1', status: 'ready', version: 1000, last_error: null },
        { schema_name: 'tenant_good2', status: 'ready', version: 1000, last_error: null },
      ]);
      // The failed tenant's transaction left nothing half-done.
      const nickname = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'tenant_bad' AND column_name = 'nickname'`.execute(fresh.database.db);
      expect(nickname.rows[0]!.n).toBe(0);

      // Fixed release: the quarantined tenant is retried (a plain rerun leaves it alone).
      const fixedRelease = new SchemaManager(fresh.database.db, [...tenantMigrations, { ...breaksOne, statements: ({ schema }) => [schema.alterTable('users').addColumn('nickname', 'text')] }]);
      expect(await fixedRelease.migrateAll({ concurrency: 2 })).toMatchObject({ migrated: 0, failed: [] });
      const resumed = await fixedRelease.migrateAll({ concurrency: 2, retryFailed: true });
      expect(resumed).toMatchObject({ total: 3, up_to_date: 2, migrated: 1, failed: [] });
      expect(await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').select('status').where('schema_name', '=', 'tenant_bad').executeTakeFirst()).toEqual({ status: 'ready' });
    } finally {
      await fresh.drop();
    }
  });

  it('also initializes tenants registered by tenant-service but never provisioned', async () => {
    const fresh = await createTestDatabase();
    try {
      await fresh.database.db.withSchema('shared').insertInto('tenants').values({ slug: 'external', name: 'External', schema_name: 'tenant_external' }).execute();
      const result = await new SchemaManager(fresh.database.db).migrateAll({ concurrency: 2 });
      expect(result).toMatchObject({ total: 1, migrated: 1, failed: [] });
      const state = await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').selectAll().executeTakeFirstOrThrow();
      expect(state).toMatchObject({ schema_name: 'tenant_external', status: 'ready', tenant_id: expect.any(String) });
    } finally {
      await fresh.drop();
    }
  });
});

describe('spare schemas', () => {
  it('provisions a tenant by renaming a prepared spare, then refills the pool', async () => {
    const fresh = await createTestDatabase();
    try {
      const spares = new SchemaManager(fresh.database.db, tenantMigrations, { spares: 2 });
      await spares.replenishSpares();
      expect(await spares.countSpares()).toBe(2);
      const [spareName] = (await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').select('schema_name').where('is_spare', '=', true).orderBy('created_at').execute()).map((r) => r.schema_name);

      const result = await spares.initializeTenantSchema('00000000-0000-4000-8000-00000000000a', 'tenant_quick');
      expect(result).toMatchObject({ schema_name: 'tenant_quick', status: 'ready', schema_version: spares.latestVersion, tables: ALL_TABLES, created_tables: ALL_TABLES });
      expect(await spares.countSpares()).toBe(1);
      const schemaRows = await sql<{ nspname: string }>`SELECT nspname FROM pg_namespace WHERE nspname = ${spareName!} OR nspname = 'tenant_quick'`.execute(fresh.database.db);
      expect(schemaRows.rows.map((r) => r.nspname)).toEqual(['tenant_quick']);
      const state = await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').selectAll().where('schema_name', '=', 'tenant_quick').executeTakeFirstOrThrow();
      expect(state).toMatchObject({ is_spare: false, status: 'ready', tenant_id: '00000000-0000-4000-8000-00000000000a', version: spares.latestVersion });
      expect(await tenantDb(fresh.database.db, 'tenant_quick').selectFrom('roles').select('name').execute()).toHaveLength(DEFAULT_ROLES.length);

      // Two tenants from spares are two separate schemas.
      await spares.initializeTenantSchema(null, 'tenant_quick2');
      await tenantDb(fresh.database.db, 'tenant_quick').insertInto('users').values({ email: 'q1@example.com' }).execute();
      expect(await tenantDb(fresh.database.db, 'tenant_quick2').selectFrom('users').select('email').execute()).toEqual([]);

      await spares.replenishSpares();
      expect(await spares.countSpares()).toBe(2);
      await spares.close();
    } finally {
      await fresh.drop();
    }
  });

  it('brings a spare made by an older release up to date when it is claimed, and keeps spares current in migrateAll', async () => {
    const fresh = await createTestDatabase();
    try {
      await new SchemaManager(fresh.database.db, tenantMigrations, { spares: 2 }).replenishSpares();
      const next = new SchemaManager(fresh.database.db, [...tenantMigrations, { version: 1000, name: 'nickname', statements: ({ schema }) => [schema.alterTable('users').addColumn('nickname', 'text')] }]);
      const claimed = await next.initializeTenantSchema(null, 'tenant_newer');
      expect(claimed).toMatchObject({ from_version: manager.latestVersion, schema_version: 1000, applied: ['1000_nickname'] });
      const all = await next.migrateAll({ concurrency: 2 });
      expect(all).toMatchObject({ total: 2, migrated: 1, up_to_date: 1, failed: [] }); // the remaining spare was migrated
      const versions = await fresh.database.db.withSchema('shared').selectFrom('tenant_schemas').select('version').distinct().execute();
      expect(versions).toEqual([{ version: 1000 }]);
    } finally {
      await fresh.drop();
    }
  });

  it('does nothing when no spares are configured', async () => {
    const none = new SchemaManager(t.database.db);
    await none.replenishSpares();
    expect(await none.countSpares()).toBe(0);
  });
});
