import { spawn } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantMigrations } from '../src/db/migrations/index.js';
import type { TenantMigration } from '../src/db/migrations/migration.js';
import { issueSystemToken } from '../src/auth/system-token.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { buildTestApp, TEST_SECRET } from './support/app.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { ROOT, runTs } from './support/process.js';
import { bearer, login, PASSWORD } from './support/tenants.js';

/*
 * Migrating every tenant as a state machine: pending, running, done, failed; a canary first,
 * then waves; a failing tenant quarantined (503) while the others go on; retried later; a run
 * killed half-way resumes. Migrations that fail for one tenant are injected.
 */

let t: TestDatabase;
let built: Awaited<ReturnType<typeof buildTestApp>>;
const SLUGS = ['ma', 'mb', 'mc', 'md'];
const latest = Math.max(...tenantMigrations.map((m) => m.version));

/** One more migration: adds a column, and fails (division by zero) for the schemas named. */
function nextMigration(version: number, failingFor: readonly string[], extra?: (schema: string) => ReturnType<typeof sql.raw>): TenantMigration {
  return {
    version,
    name: `test_${version}`,
    statements: ({ schemaName }) => [
      ...(extra ? [extra(schemaName)] : []),
      failingFor.includes(schemaName) ? sql.raw('SELECT 1/0') : sql.raw(`ALTER TABLE ${schemaName}.notes ADD COLUMN test_${version} integer`),
    ],
  };
}

const system = () => built.app.inject({ method: 'GET', url: '/api/v1/migrations' });
const statesOf = async (query = '') => {
  const token = await issueSystemToken(built.keys, { subject: 'test', ttlSeconds: 60 });
  return built.app.inject({ method: 'GET', url: `/api/v1/migrations${query}`, headers: bearer(token) });
};

beforeAll(async () => {
  t = await createTestDatabase();
  built = await buildTestApp(t.database.db);
  for (const slug of SLUGS) await built.tenants.create({ slug, admin: { email: `admin@${slug}.example`, password: PASSWORD } });
});
afterAll(async () => {
  await built?.app.close();
  await t?.drop();
});

describe('migrating every tenant', () => {
  it('lists every schema as done when all are current', async () => {
    const res = await statesOf();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ latest_version: latest, summary: { done: 4, pending: 0, running: 0, failed: 0 }, total: 4 });
    expect(res.json().items.map((i: { slug: string }) => i.slug)).toEqual(SLUGS);
    expect((await system()).statusCode).toBe(401);
    expect((await statesOf('?state=sleeping')).json()).toMatchObject({ status: 400, code: 'request.invalid' });
  });

  it('runs a canary, then waves; quarantines the one that fails, and the others go on', async () => {
    const manager = new SchemaManager(t.database.db, [...tenantMigrations, nextMigration(latest + 1, ['tenant_mc'])]);
    const before = await manager.migrationStates({ page: 1, page_size: 100 });
    expect(before.summary).toEqual({ pending: 4, running: 0, done: 0, failed: 0 });
    const phases: string[] = [];
    const result = await manager.migrateAll({ concurrency: 2, canary: 1, wave: 2, onProgress: (p) => phases.push(`${p.phase} ${p.schema_name} ${p.ok}`) });
    expect(phases.sort()).toEqual(['canary tenant_ma true', 'wave 1/2 tenant_mb true', 'wave 1/2 tenant_mc false', 'wave 2/2 tenant_md true']);
    expect(result).toMatchObject({ migrated: 3, not_started: 0, stopped_after: null, failed: [{ schema_name: 'tenant_mc', error: expect.stringMatching(/division by zero/) }] });
    const after = await manager.migrationStates({ page: 1, page_size: 100 });
    expect(after.summary).toEqual({ pending: 0, running: 0, done: 3, failed: 1 });
    expect(after.items.find((i) => i.slug === 'mc')).toMatchObject({ state: 'failed', version: latest, last_error: expect.stringMatching(/division by zero/) });

    // The quarantined tenant answers 503 with a clear problem; its neighbours answer.
    const quarantined = await built.app.inject({ method: 'POST', url: '/api/v1/tenants/mc/auth/login', payload: { email: 'admin@mc.example', password: PASSWORD } });
    expect(quarantined.statusCode).toBe(503);
    expect(quarantined.json()).toMatchObject({ code: 'tenant.quarantined', detail: expect.stringMatching(/failed a migration/) });
    const md = await login(built.app, 'md', 'admin@md.example');
    expect((await built.app.inject({ method: 'GET', url: '/api/v1/tenants/md/users', headers: bearer(md.access_token) })).statusCode).toBe(200);
    // The platform view shows it too, filtered by state.
    expect((await statesOf('?state=failed')).json()).toMatchObject({ summary: { failed: 1 }, total: 1, items: [{ slug: 'mc', state: 'failed' }] });

    // A plain run leaves the quarantined schema alone; --retry-failed takes it up, once fixed.
    expect(await manager.migrateAll({ concurrency: 2 })).toMatchObject({ migrated: 0, failed: [] });
    const fixed = new SchemaManager(t.database.db, [...tenantMigrations, nextMigration(latest + 1, [])]);
    expect(await fixed.migrateAll({ concurrency: 2, retryFailed: true })).toMatchObject({ migrated: 1, failed: [] });
    expect((await fixed.migrationStates({ page: 1, page_size: 100 })).summary).toEqual({ pending: 0, running: 0, done: 4, failed: 0 });
    await built.services.directory.invalidate('mc');
    expect((await login(built.app, 'mc', 'admin@mc.example')).access_token).toBeTruthy();
  });

  it('stops after a canary that fails, leaving the rest pending', async () => {
    const manager = new SchemaManager(t.database.db, [...tenantMigrations, nextMigration(latest + 1, []), nextMigration(latest + 2, ['tenant_ma'])]);
    const result = await manager.migrateAll({ concurrency: 1, canary: 1, wave: 1 });
    expect(result).toMatchObject({ migrated: 0, not_started: 3, stopped_after: 'canary', failed: [{ schema_name: 'tenant_ma' }] });
    expect((await manager.migrationStates({ page: 1, page_size: 100 })).summary).toEqual({ pending: 3, running: 0, done: 0, failed: 1 });
    // The fixed migration: the failed canary is retried, then the rest go.
    const fixed = new SchemaManager(t.database.db, [...tenantMigrations, nextMigration(latest + 1, []), nextMigration(latest + 2, [])]);
    expect(await fixed.migrateAll({ concurrency: 2, retryFailed: true })).toMatchObject({ migrated: 1 });
    expect(await fixed.migrateAll({ concurrency: 2, canary: 1 })).toMatchObject({ migrated: 3, failed: [] });
  });
});

describe('the CLI', { timeout: 120_000 }, () => {
  const cli = (...args: string[]) => runTs('src/cli.ts', args, { DATABASE_URL: t.url, JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn' });

  it('migrates registered tenants with a canary and waves, printing its progress, and lists states', async () => {
    // Two tenants registered (as tenant-service does) but not provisioned yet: pending.
    for (const slug of ['me', 'mf']) {
      await sql`INSERT INTO shared.tenants (slug, name, schema_name) VALUES (${slug}, ${slug}, ${`tenant_${slug}`})`.execute(t.database.db);
    }
    const states = JSON.parse((await cli('tenants', 'migrations', '--state', 'pending', '--json')).stdout);
    expect(states.items.map((i: { slug: string }) => i.slug)).toEqual(['me', 'mf']);
    const run = await cli('tenants', 'migrate', '--all', '--canary', '1', '--wave', '1');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/\[1\/2\] canary: tenant_me ok/);
    expect(run.stdout).toMatch(/\[2\/2\] wave 1\/1: tenant_mf ok/);
    const listed = await cli('tenants', 'migrations');
    expect(listed.stdout).toMatch(/: 6 done, 0 pending, 0 running, 0 failed/);
    const usage = await cli('tenants', 'migrate', 'me', '--canary', '1');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--canary and --wave go with --all/);
    expect((await cli('tenants', 'migrations', '--state', 'odd')).stderr).toMatch(/--state must be one of pending, running, done, failed/);
  });

  it('shows a schema being migrated as running, and resumes a run killed half-way', async () => {
    for (const slug of ['ka', 'kb', 'kc']) {
      await sql`INSERT INTO shared.tenants (slug, name, schema_name) VALUES (${slug}, ${slug}, ${`tenant_${slug}`})`.execute(t.database.db);
    }
    // An uncommitted CREATE SCHEMA of tenant_kb makes the run's own wait, inside its transaction.
    const blocker = await t.database.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('CREATE SCHEMA tenant_kb');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'tenants', 'migrate', '--all', '--concurrency', '1'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: t.url, JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    const manager = new SchemaManager(t.database.db);
    const stateOf = async (schema: string) => (await manager.migrationStates({ page: 1, page_size: 100 })).items.find((i) => i.schema_name === schema)?.state;
    try {
      for (let i = 0; i < 200 && (await stateOf('tenant_kb')) !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await stateOf('tenant_kb')).toBe('running');
      expect(await stateOf('tenant_ka')).toBe('done');
      expect(output).toMatch(/tenant_ka ok/);
      // Killed half-way: no chance to record anything.
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    // Its server-side transaction ends once it finds its client gone; the schema is then pending.
    for (let i = 0; i < 100 && (await stateOf('tenant_kb')) === 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await stateOf('tenant_kb')).toBe('pending');
    expect(await stateOf('tenant_kc')).toBe('pending');
    const resumed = await cli('tenants', 'migrate', '--all');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/2 migrated, \d+ already up to date, 0 failed/);
    expect(resumed.stdout).not.toMatch(/tenant_ka/);
    expect(await stateOf('tenant_kb')).toBe('done');
  });
});
