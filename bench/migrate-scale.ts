/*
 * migrate_all and provisioning at N tenants, alone (docs/BENCHMARKS.md): N tenant schemas with
 * their roles in a throwaway embedded cluster (written without fsync: set-up), then one added
 * column over all of them, `concurrency` at a time, and a few cold provisions beside them.
 *
 *   BENCH_TENANTS=1500 npx tsx bench/migrate-scale.ts
 *   BENCH_DATA_DIR=/somewhere ...   keeps the cluster; a second run reuses its tenants
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createDatabase } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { tenantMigrations } from '../src/db/migrations/index.js';
import { migratePlatform } from '../src/db/platform.js';
import { currentDatabase, EMBEDDED_ROLES, tenantRoleNamer } from '../src/db/roles.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';

const TENANTS = Number(process.env.BENCH_TENANTS ?? 1500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const COLD = 8;

const kept = process.env.BENCH_DATA_DIR;
const dir = kept ?? (await mkdtemp(path.join(os.tmpdir(), 'system-service-migrate-')));
await mkdir(dir, { recursive: true });
const roles = async (db: ReturnType<typeof createDatabase>['db']) => ({ runtimeRole: EMBEDDED_ROLES.runtime, tenantRole: tenantRoleNamer(await currentDatabase(db)) });

/** The cluster of `dir` with a pool as the owner, for `work`; stopped after. */
async function withCluster(unsafeFast: boolean, work: (db: ReturnType<typeof createDatabase>['db']) => Promise<void>): Promise<void> {
  const pg = await startEmbeddedPostgres({ dataDir: dir, unsafeFast });
  const database = createDatabase({ url: pg.ownerUrl, max: 10, connectionTimeoutMs: 10_000, applicationName: 'system-service-bench' });
  try {
    await work(database.db);
  } finally {
    await database.close();
    await pg.stop();
  }
}

try {
  // Set-up, without fsync: the platform and the tenants not there yet.
  await withCluster(true, async (db) => {
    await migratePlatform(db, EMBEDDED_ROLES.runtime);
    const have = Number((await db.withSchema('shared').selectFrom('tenants').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    // Slugs of this run's own, so a kept cluster whose numbering has gaps tops up without clashes.
    const run = Date.now().toString(36);
    const rows = Array.from({ length: Math.max(0, TENANTS - have) }, (_, i) => ({ slug: `t${run}${i}`, name: `Tenant ${run} ${i}`, schema_name: `tenant_t${run}${i}` }));
    for (let i = 0; i < rows.length; i += 500) await db.withSchema('shared').insertInto('tenants').values(rows.slice(i, i + 500)).execute();
    const started = performance.now();
    const provisioned = await new SchemaManager(db, tenantMigrations, await roles(db)).migrateAll({ concurrency: 2 });
    console.log(`provisioned ${provisioned.migrated} of ${provisioned.total} tenants in ${((performance.now() - started) / 1000).toFixed(1)} s (two at a time, no fsync)`);
  });
  // Measured, durable (fsync and synchronous commit on).
  await withCluster(false, async (db) => {
    const column = `bench_${Date.now().toString(36)}`;
    // Above any real version, and above the columns of earlier runs on a kept cluster.
    const version = 100_000 + (Math.floor(Date.now() / 1000) % 100_000);
    const next = new SchemaManager(db, [...tenantMigrations, { version, name: column, statements: ({ schema }) => [schema.alterTable('users').addColumn(column, 'text')] }], await roles(db));
    const started = performance.now();
    const migrated = await next.migrateAll({ concurrency: CONCURRENCY });
    const ms = performance.now() - started;
    console.log(`migrate_all: one column over ${migrated.total} schemas in ${(ms / 1000).toFixed(1)} s (${(ms / migrated.total).toFixed(1)} ms per schema, ${CONCURRENCY} at a time), ${migrated.failed.length} failed`);
    const cold: number[] = [];
    for (let i = 0; i < COLD; i++) {
      const t = performance.now();
      await next.initializeTenantSchema(null, `tenant_cold_${version}_${i}`);
      cold.push(performance.now() - t);
    }
    console.log(`cold provisioning beside them: ${cold.map((c) => c.toFixed(0)).join(', ')} ms`);
  });
} finally {
  if (!kept) await rm(dir, { recursive: true, force: true });
}
