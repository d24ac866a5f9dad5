import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantColumns } from '../src/db/columns.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { TEST_SECRET } from './support/app.js';
import { ROOT, runTs } from './support/process.js';

let t: TestDatabase;
const ALL_TABLES = Object.keys(tenantColumns).sort();

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => t?.drop());

const cli = (...args: string[]) => runTs('src/cli.ts', args, { DATABASE_URL: t.url, JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn' });

describe('system-service CLI', { timeout: 120_000 }, () => {
  it('prints a short-lived system token signed with the configured key', async () => {
    const result = await cli('token', 'system', '--ttl', '120');
    expect(result.code).toBe(0);
    const { payload } = await jwtVerify(result.stdout.trim(), new TextEncoder().encode(TEST_SECRET), { algorithms: ['HS256'] });
    expect(payload).toMatchObject({ type: 'system', sub: 'cli' });
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('creates, lists and migrates tenants through the same services as the API', async () => {
    const created = await cli('tenants', 'create', 'cli-one', '--name', 'CLI One', '--admin-email', 'admin@one.example', '--admin-password', 'a long cli password');
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/created tenant cli_one \(.+\), schema tenant_cli_one ready at version \d+/);
    expect(created.stdout).toMatch(/admin user admin@one\.example/);
    expect((await cli('tenants', 'create', 'cli-two')).code).toBe(0);

    const duplicate = await cli('tenants', 'create', 'cli_one');
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr.trim()).toBe('a tenant with slug "cli_one" already exists');

    const bad = await cli('tenants', 'create', "x';drop");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^slug must be/);

    const list = await cli('tenants', 'list', '--json');
    expect(JSON.parse(list.stdout).map((x: { slug: string }) => x.slug)).toEqual(['cli_one', 'cli_two']);

    const drop = await cli('schema', 'drop', 'tenant_cli_two');
    expect(drop.stdout).toMatch(/tenant_cli_two holds the data of tenant cli_two/);
    expect(drop.code).toBe(2);

    const one = await cli('tenants', 'migrate', 'cli_one');
    expect(one.stdout).toMatch(/tenant_cli_one: version \d+ -> \d+ \(up to date\)/);

    const all = await cli('tenants', 'migrate', '--all', '--concurrency', '2');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/2 tenant schemas \(0 of them spares\): 0 migrated, 2 already up to date, 0 failed/);
  });

  it('lists, describes, creates and drops schemas', async () => {
    const created = await cli('schema', 'create', 'tenant_scratch');
    expect(created.code).toBe(0);
    const tables = Object.keys(tenantColumns).length;
    expect(created.stdout).toMatch(new RegExp(`tenant_scratch: version \\d+, ${tables} tables \\(${tables} created\\)`));

    const list = await cli('schema', 'list', 'tenant_scratch');
    expect(list.stdout.trim().split('\n')).toEqual(ALL_TABLES);

    const info = JSON.parse((await cli('schema', 'info', 'tenant_scratch', '--json')).stdout);
    expect(info).toMatchObject({ schema_name: 'tenant_scratch', exists: true, status: 'ready' });
    expect(info.tables).toHaveLength(ALL_TABLES.length);
    expect(info.tables.find((x: { name: string }) => x.name === 'roles').estimated_rows).toBe(4);
    const human = await cli('schema', 'info', 'tenant_scratch');
    expect(human.stdout).toMatch(/status\s+ready, version \d+ of \d+/);
    const missing = await cli('schema', 'info', 'tenant_missing');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('schema tenant_missing does not exist');

    const refused = await cli('schema', 'drop', 'tenant_scratch');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to drop tenant_scratch without --yes/);
    expect((await cli('schema', 'list', 'tenant_scratch')).stdout.trim().split('\n')).toHaveLength(ALL_TABLES.length);

    const dropped = await cli('schema', 'drop', 'tenant_scratch', '--yes');
    expect(dropped.stdout.trim()).toBe('dropped tenant_scratch');
    expect((await cli('schema', 'list', 'tenant_scratch')).stdout).toBe('');
  });

  it('refuses reserved and malformed schema names, and bad usage', async () => {
    for (const name of ['public', 'shared', 'tenant_template', 'pg_catalog', 'Bad-Name']) {
      const result = await cli('schema', 'create', name);
      expect(result.code, name).toBe(1);
      expect(result.stderr).toMatch(/^schema /);
    }
    expect((await cli('bogus')).code).toBe(2);
    expect((await cli()).code).toBe(2);
    expect((await cli('tenants', 'migrate')).code).toBe(2);
    expect((await cli('tenants', 'list', '--no-such-flag')).code).toBe(2);
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/tenants migrate \(--all \| <slug>\)/);
  });

  it('shows a progress bar when migrating on a terminal', async () => {
    // Registered elsewhere, never initialized: migrate --all provisions it.
    await t.database.db.withSchema('shared').insertInto('tenants').values({ slug: 'registered', name: 'Registered', schema_name: 'tenant_registered' }).execute();
    // `script` runs the command on a pseudo-terminal.
    const command = `${process.execPath} --import tsx src/cli.ts tenants migrate --all`;
    const result = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: t.url, JWT_SECRET_KEY: TEST_SECRET }, encoding: 'utf8', timeout: 60_000 });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/\[#{30}\] 1\/1 wave 1\/1: tenant_registered/);
    expect(result.stdout).toMatch(/3 tenant schemas \(0 of them spares\): 1 migrated, 2 already up to date, 0 failed/);
  });

  it('exports, imports, forks, backs up, restores, suspends and deletes tenants', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ss-cli-lifecycle-'));
    const env = { DATABASE_URL: t.url, JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn', DATA_DIR: dir };
    const run = (...args: string[]) => runTs('src/cli.ts', args, env);
    const count = async (schema: string) => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id(schema, 'users')}`.execute(t.database.db)).rows[0]!.n);
    try {
      expect((await run('tenants', 'create', 'life_a', '--admin-email', 'admin@a.example', '--admin-password', 'a long cli password')).code).toBe(0);
      expect((await run('tenants', 'create', 'life_b', '--admin-email', 'admin@b.example', '--admin-password', 'a long cli password')).code).toBe(0);
      const archive = path.join(dir, 'a.tar.gz');
      // On a terminal, rows go by as they are written.
      const command = `${process.execPath} --import tsx src/cli.ts tenants export life_a -o ${archive}`;
      const shown = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
      expect(shown.status, shown.stdout).toBe(0);
      expect(shown.stdout).toMatch(/export: users, \d+ rows/);
      expect(shown.stdout).toMatch(new RegExp(`exported life_a: \\d+ rows in \\d+ tables, 0 files, [0-9.]+ MB to ${archive}`));
      expect(readFileSync(archive).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      // Standard tools read it: manifest.json first, then the tables.
      const listed = spawnSync('tar', ['-tzf', archive], { encoding: 'utf8' });
      expect(listed.status, listed.stderr).toBe(0);
      expect(listed.stdout.split('\n')[0]).toBe('manifest.json');
      expect(listed.stdout).toContain('tables/users.ndjson');

      const imported = await run('tenants', 'import', archive, '--slug', 'life_copy');
      expect(imported.stderr).toBe('');
      expect(imported.stdout).toMatch(/imported .* as tenant life_copy \(.+\), schema tenant_life_copy at version \d+/);
      expect(await count('tenant_life_copy')).toBe(await count('tenant_life_a'));
      expect((await run('tenants', 'import', archive, '--slug', 'life_b')).stderr.trim()).toBe('a tenant with slug "life_b" already exists');
      expect((await run('tenants', 'import', archive)).code).toBe(2);

      expect((await run('tenants', 'fork', 'life_a', 'life_fork')).stdout).toMatch(/forked life_a into life_fork \(.+\) in \d+ ms/);
      expect((await run('tenants', 'fork', 'life_a')).code).toBe(2);

      const backup = await run('tenants', 'backup', 'life_a');
      const id = /backup ([0-9a-f-]{36}) of life_a: [0-9.]+ MB, sha256 [0-9a-f]{64}/.exec(backup.stdout)?.[1];
      expect(id, backup.stdout + backup.stderr).toBeDefined();
      expect(readdirSync(path.join(dir, 'backups'), { recursive: true }).map(String).some((f) => f.endsWith(id!))).toBe(true);
      expect((await run('tenants', 'backups', 'life_a')).stdout).toContain(id);
      await sql`DELETE FROM tenant_life_a.users WHERE email <> 'admin@a.example'`.execute(t.database.db);
      await sql`UPDATE tenant_life_a.roles SET description = 'changed after the backup'`.execute(t.database.db);
      expect((await run('tenants', 'restore', 'life_a', id!)).stdout).toBe(`restored life_a to backup ${id}; its sessions ended\n`);
      expect((await sql<{ n: string }>`SELECT count(*) AS n FROM tenant_life_a.roles WHERE description = 'changed after the backup'`.execute(t.database.db)).rows[0]!.n).toBe('0');

      expect((await run('tenants', 'suspend', 'life_b')).stdout).toBe('life_b is suspended\n');
      expect((await t.database.db.withSchema('shared').selectFrom('tenants').select('status').where('slug', '=', 'life_b').executeTakeFirstOrThrow()).status).toBe('suspended');
      expect((await run('tenants', 'resume', 'life_b')).stdout).toBe('life_b is active\n');

      expect((await run('tenants', 'delete', 'life_fork')).code).toBe(2);
      const deleted = await run('tenants', 'delete', 'life_fork', '--yes');
      expect(deleted.stdout).toMatch(/deleted life_fork \(.+\); final backup [0-9a-f-]{36}/);
      expect((await run('tenants', 'delete', 'life_copy', '--yes', '--no-backup')).stdout).toMatch(/^deleted life_copy \([0-9a-f-]+\)\n$/);
      expect((await sql<{ n: string }>`SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('tenant_life_fork', 'tenant_life_copy')`.execute(t.database.db)).rows[0]!.n).toBe('0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
