import { readFileSync } from 'node:fs';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantMigrations } from '../src/db/migrations/index.js';
import { migratePlatform, splitSqlStatements, templateObject } from '../src/db/platform.js';
import type { PlatformDatabase } from '../src/db/platform-types.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { checkTopLevelDdl, compileMigration, indexesAfterLoad, statementCount } from '../src/tenancy/schema-sql.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

/*
 * The DDL rules Citus schema-based sharding needs (no Citus package here, so the rules are
 * tested): every tenant statement goes out top-level and alone, never in a DO block or a
 * multi-statement string, and start-up creates nothing that already exists.
 */

let t: TestDatabase;
let sent: string[];
let db: Kysely<PlatformDatabase>;

beforeAll(async () => {
  t = await createTestDatabase();
  sent = [];
  // The same pool, with every statement it sends recorded.
  db = new Kysely<PlatformDatabase>({ dialect: new PostgresDialect({ pool: t.database.pool }), log: (event) => void sent.push(event.query.sql) });
});
afterAll(async () => t?.drop());

describe('indexesAfterLoad', () => {
  const q = (text: string) => ({ sql: text, parameters: [] }) as unknown as ReturnType<typeof compileMigration>[number];
  it('moves plain indexes no later statement names after a load; unique and later-named ones stay before', () => {
    const statements = [
      q('create table "s"."a" ("id" int)'),
      q('create index "a_id_idx" on "s"."a" ("id")'),
      q('create unique index "a_id_uq" on "s"."a" ("id")'),
      q('CREATE INDEX a_later_idx ON "s"."a" (id)'),
      q('create index "a_gin_idx" on "s"."a" using gin ("id")'),
      q('drop index "s"."a_later_idx"'),
    ];
    const { before, after } = indexesAfterLoad(statements);
    expect(before.map((s) => s.sql)).toEqual([statements[0]!.sql, statements[2]!.sql, statements[3]!.sql, statements[5]!.sql]);
    expect(after.map((s) => s.sql)).toEqual([statements[1]!.sql, statements[4]!.sql]);
  });
  it('keeps every tenant migration statement, each once, the DDL order otherwise unchanged', () => {
    const all = tenantMigrations.flatMap((m) => compileMigration(db, m, 'tenant_x'));
    const { before, after } = indexesAfterLoad(all);
    expect([...before, ...after].map((s) => s.sql).sort()).toEqual(all.map((s) => s.sql).sort());
    expect(after.length).toBeGreaterThan(50);
    expect(before.map((s) => s.sql)).toEqual(all.filter((s) => !after.includes(s)).map((s) => s.sql));
  });
});

describe('statementCount', () => {
  it('counts statements outside quotes, comments and dollar-quoted bodies', () => {
    expect(statementCount('CREATE INDEX a ON s.t (x)')).toBe(1);
    expect(statementCount('CREATE INDEX a ON s.t (x);')).toBe(1);
    expect(statementCount('CREATE INDEX a ON s.t (x); CREATE INDEX b ON s.t (y)')).toBe(2);
    expect(statementCount("ALTER TABLE s.t ADD CONSTRAINT c CHECK (x <> ';')")).toBe(1);
    expect(statementCount('create function f() returns trigger language plpgsql as $body$ begin raise exception \'no\'; end; $body$')).toBe(1);
    expect(statementCount('SELECT 1 -- ; not a second\n')).toBe(1);
    expect(statementCount('SELECT 1 /* ; */; SELECT 2')).toBe(2);
  });
});

describe('tenant migrations', () => {
  it.each(tenantMigrations.map((m) => ({ name: `${m.version}_${m.name}`, migration: m })))('$name sends each statement top-level and alone', ({ migration }) => {
    const statements = compileMigration(db, migration, 'tenant_rules');
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) expect(() => checkTopLevelDdl(s)).not.toThrow();
  });

  it('refuses a DO block or several statements in one string', () => {
    const compiled = (text: string) => sql.raw(text).compile(db);
    expect(() => checkTopLevelDdl(compiled("DO $$ BEGIN EXECUTE 'CREATE TABLE s.t (id int)'; END $$"))).toThrow(/DO block/);
    expect(() => checkTopLevelDdl(compiled('CREATE TABLE s.a (id int); CREATE INDEX a_idx ON s.a (id)'))).toThrow(/2 statements/);
  });

  it('provisions two tenants with top-level statements only: one CREATE TABLE per table, no DO', async () => {
    sent.length = 0;
    const manager = new SchemaManager(db);
    const a = await manager.initializeTenantSchema(null, 'tenant_ddl_a');
    await manager.initializeTenantSchema(null, 'tenant_ddl_b');
    const ddl = sent.filter((text) => /^\s*(create|alter|drop|do)\b/i.test(text));
    expect(ddl.filter((text) => /^\s*do\b/i.test(text))).toEqual([]);
    for (const text of ddl) expect(statementCount(text), text).toBe(1);
    for (const schema of ['tenant_ddl_a', 'tenant_ddl_b']) {
      const creates = ddl.filter((text) => new RegExp(`^\\s*create table (if not exists )?"?${schema}"?\\."?(\\w+)"?`, 'i').test(text));
      expect(creates).toHaveLength(a.tables.length);
    }
  });
});

describe('start-up', () => {
  it('looks up every template statement in the catalogue', () => {
    const text = readFileSync(new URL('../src/db/sql/tenant_template.sql', import.meta.url), 'utf8');
    for (const statement of splitSqlStatements(text)) expect(() => templateObject(statement)).not.toThrow();
    expect(() => templateObject('GRANT ALL ON SCHEMA x TO y')).toThrow(/cannot be looked up/);
  });

  it('creates nothing that already exists when the platform is up to date', async () => {
    sent.length = 0;
    await migratePlatform(db);
    expect(sent.filter((text) => /^\s*(create|alter|drop)\b/i.test(text))).toEqual([]);
  });

  it('creates the template objects that are missing, and only those', async () => {
    await sql`DROP INDEX tenant_template.activity_log_user_id_idx`.execute(db);
    sent.length = 0;
    await migratePlatform(db);
    expect(sent.filter((text) => /^\s*(create|alter|drop)\b/i.test(text))).toEqual([expect.stringMatching(/^CREATE INDEX IF NOT EXISTS activity_log_user_id_idx/)]);
    const found = await sql<{ ok: boolean }>`SELECT to_regclass('tenant_template.activity_log_user_id_idx') IS NOT NULL AS ok`.execute(db);
    expect(found.rows[0]!.ok).toBe(true);
  });
});
