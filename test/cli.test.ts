import { spawnSync } from 'node:child_process';
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
});
