import { chownSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { descendants, exited, isAlive, runTs, startCommand, startTs } from './support/process.js';

/**
 * The service as a user runs it: `npm start` on the embedded database (no DATABASE_URL),
 * in a DATA_DIR of its own.
 */
let dataDir: string;
let clusterElsewhere: string | undefined;
const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;

function env() {
  return { DATA_DIR: dataDir, DATABASE_URL: undefined, ENVIRONMENT: 'development', SERVICE_PORT: '0', SERVICE_HOST: '127.0.0.1', LOG_LEVEL: 'info', JWT_SECRET_KEY: undefined };
}

function postmasterOf(pid: number) {
  const pg = descendants(pid).filter((p) => p.comm === 'postgres');
  expect(pg.length).toBeGreaterThan(0);
  return pg;
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-lifecycle-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
  if (clusterElsewhere) await rm(clusterElsewhere, { recursive: true, force: true });
});

describe('service lifecycle on the embedded database', { timeout: 120_000 }, () => {
  it('first run creates the demo tenant, serves, and SIGTERM leaves no postgres process behind', async () => {
    const { child, output, match } = await startTs('src/main.ts', env(), LISTENING);
    const base = `http://127.0.0.1:${match[1]}`;
    clusterElsewhere = /the embedded database lives in ([^"\s]+)/.exec(output())?.[1];
    expect(output()).toMatch(/admin login\s+admin@demo\.local \/ \S{12,}/);
    expect(output()).toMatch(/npm run cli -- token system/);
    expect(output()).toMatch(/\/docs/);
    expect((await fetch(`${base}/ready`)).status).toBe(200);

    // The CLI attaches to the running embedded server instead of starting another.
    const list = await runTs('src/cli.ts', ['tenants', 'list'], env());
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^demo\s+\S+\s+tenant_demo\s+ready\s+\d+/m);
    expect((await fetch(`${base}/ready`)).status).toBe(200);

    const token = (await runTs('src/cli.ts', ['token', 'system'], env())).stdout.trim();
    const tenants = await fetch(`${base}/api/v1/tenants`, { headers: { authorization: `Bearer ${token}` } });
    expect(tenants.status).toBe(200);
    expect(((await tenants.json()) as { items: { slug: string }[] }).items.map((t) => t.slug)).toEqual(['demo']);

    const pg = postmasterOf(child.pid!);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(output()).toMatch(/"msg":"stopped"/);
    for (const p of pg) expect(isAlive(p.pid), `postgres ${p.pid} still running`).toBe(false);
  });

  it('`npm start` passes a process manager\'s SIGTERM to the service, which drains and stops with its database', async () => {
    const { child } = await startCommand('npm', ['start'], env(), LISTENING);
    const pg = postmasterOf(child.pid!);
    child.kill('SIGTERM');
    expect(await exited(child, 20_000)).toBe(0);
    for (const p of pg) expect(isAlive(p.pid), `postgres ${p.pid} still running`).toBe(false);
  });

  it('after a crash (SIGKILL), the next start stops the orphaned server, keeps the data, and SIGINT cleans up', async () => {
    const first = await startTs('src/main.ts', env(), LISTENING);
    const orphans = postmasterOf(first.child.pid!);
    first.child.kill('SIGKILL');
    await exited(first.child);

    const second = await startTs('src/main.ts', env(), LISTENING);
    expect(second.output()).toMatch(/stopping an embedded PostgreSQL left behind by an earlier run/);
    expect(second.output()).not.toMatch(/First run/); // the demo tenant survived
    for (const p of orphans) expect(isAlive(p.pid)).toBe(false);

    const pg = postmasterOf(second.child.pid!);
    second.child.kill('SIGINT');
    expect(await exited(second.child)).toBe(0);
    for (const p of pg) expect(isAlive(p.pid)).toBe(false);
  });
  it('a start after an upgrade migrates the tenant schemas behind it before serving', async () => {
    // As if the demo tenant were made by the release before the passkeys migration (14).
    const pg = await startEmbeddedPostgres({ dataDir });
    const owner = createDatabase({ url: pg.ownerUrl, max: 1, connectionTimeoutMs: 10_000 });
    await sql`DROP TABLE tenant_demo.mfa_passkey_challenges, tenant_demo.mfa_passkeys`.execute(owner.db);
    await sql`UPDATE shared.tenant_schemas SET version = 13 WHERE schema_name = 'tenant_demo'`.execute(owner.db);
    await owner.close();
    await pg.stop();

    const { child, output, match } = await startTs('src/main.ts', env(), LISTENING);
    expect(output()).toMatch(/"msg":"migrated the tenant schemas behind this release"/);
    const token = (await runTs('src/cli.ts', ['token', 'system'], env())).stdout.trim();
    const res = await fetch(`http://127.0.0.1:${match[1]}/api/v1/migrations`, { headers: { authorization: `Bearer ${token}` } });
    const { summary } = (await res.json()) as { summary: Record<string, number> };
    expect(summary, JSON.stringify(summary)).toMatchObject({ pending: 0, failed: 0 });
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });
  // As root the cluster runs as the postgres user, whose uid may differ on another machine.
  it.skipIf(process.getuid?.() !== 0)('a cluster whose files belong to another user (moved from another machine) is handed to postgres at start', async () => {
    const first = await startEmbeddedPostgres({ dataDir });
    const control = path.join(first.dataDir, 'global', 'pg_control');
    const postgresUser = statSync(control);
    await first.stop();
    chownSync(control, 0, 0);
    chownSync(first.dataDir, 0, 0);

    const second = await startEmbeddedPostgres({ dataDir });
    const owner = createDatabase({ url: second.ownerUrl, max: 1, connectionTimeoutMs: 10_000 });
    try {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM shared.tenants WHERE slug = 'demo'`.execute(owner.db);
      expect(rows[0]?.n).toBe(1);
      expect(statSync(control).uid).toBe(postgresUser.uid);
      expect(statSync(second.dataDir).uid).toBe(postgresUser.uid);
    } finally {
      await owner.close();
      await second.stop();
    }
  });
});
