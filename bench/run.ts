/**
 * `npm run bench [-- --quick | --full | --smoke]`: the service, its floor and PostgreSQL on one
 * machine, measured side by side in one run. Writes bench/results/latest.json and a dated copy.
 *
 * Modes (the `mode` field of the results):
 * - standard (no flag): the compiled service, 7 rounds of 4 s turns, scale at 2,000 tenants, a
 *   lifecycle tenant (export, fork) of 10,000 users and 100,000 records;
 * - `--full`: the standard run with scale at 10,000 tenants;
 * - `--quick`: the service from source, one round of 2 s turns, scale at 12 tenants, a lifecycle
 *   tenant of 2,000 users and 20,000 records (about a minute);
 * - `--smoke`: not a measurement: every scenario once, in turns of 0.75 s (login's 1.5 s), no
 *   warm-up, no settling, 3 tenants against 4, 2 cold provisionings, a lifecycle tenant of 200
 *   users and 2,000 records: test/bench-smoke.test.ts runs it to check in about 25 s that the run
 *   works and writes valid results. Its numbers mean nothing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { loadJwtKeys } from '../src/auth/keys.js';
import { hashPassword, verifyPassword } from '../src/auth/passwords.js';
import { issueSystemToken } from '../src/auth/system-token.js';
import { DEFAULT_PREPARED_STATEMENTS, loadConfig } from '../src/config.js';
import { createDatabase, tenantDb, type Database } from '../src/db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.js';
import { tenantMigrations } from '../src/db/migrations/index.js';
import { migratePlatform } from '../src/db/platform.js';
import { currentDatabase, EMBEDDED_ROLES, tenantRoleNamer } from '../src/db/roles.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { archivedTables, exportOverHttp, floorExportCopy, forkOverHttp, seedLargeTenant } from './lifecycle.js';
import { auditAnalyticsScenario } from './analytics.js';
import { searchScenario } from './search.js';
import type { LoadSpec } from './load.js';
import { mintCodes, registerClient } from './oidc.js';

const execFileAsync = promisify(execFile);

type Mode = 'smoke' | 'quick' | 'standard' | 'full';
const mode: Mode = process.argv.includes('--smoke') ? 'smoke' : process.argv.includes('--quick') ? 'quick' : process.argv.includes('--full') ? 'full' : 'standard';
/** This mode's value of a setting. */
const byMode = <T>(values: Record<Mode, T>): T => values[mode];
/** The quick and smoke runs start the service from source and skip the warm-up turns. */
const short = mode === 'quick' || mode === 'smoke';
/**
 * Seconds of each measured turn of a scenario in turns with its floor, and of a scenario measured
 * once (create_user). CPU is read per process in whole 10 ms ticks, and a read's PostgreSQL CPU
 * is spread over the pool's ~8 backends: the smoke run's turns are the shortest that still surely
 * show some (half a second of get_user on a busy machine came to ~40 ms, 4 ticks).
 */
const TURN_SECONDS = byMode({ smoke: 0.75, quick: 2, standard: 4, full: 4 });
const SECONDS = byMode({ smoke: 1.5, quick: 2, standard: 10, full: 10 });
/** Seconds of each turn of login and its floor: as long as the other turns but in the smoke run, whose short turns hold too few logins (~0.6 ms of PostgreSQL CPU each). */
const LOGIN_TURN_SECONDS = byMode({ smoke: 1.5, quick: 2, standard: 4, full: 4 });
/** How often the load generator samples its request count (a run ends on a sample: half a second at 1,000 ms would take a second). */
const SAMPLE_MS = byMode({ smoke: 100, quick: 1000, standard: 1000, full: 1000 });
const CONNECTIONS = 8;
const LARGE = byMode({ smoke: 4, quick: 12, standard: 2000, full: 10_000 });
/** The tenants of the first cluster, the measured ones: reads go to t0 and t1, create_user to t2. */
const SMALL = byMode({ smoke: 3, quick: 10, standard: 10, full: 10 });
/**
 * Turns of floor_get_user with get_user and list_users, of floor_argon2_verify with login, of
 * floor_get_user with refresh (the median turn is kept). This machine's speed drifts: the floor
 * alone, under steady load for 150 s, differed by ~10% (standard deviation of the log ratio)
 * between adjacent windows of any length from 3 to 15 s, so a turn's ratio to the floor turn
 * beside it moves ~10% whatever the turn's length; more, shorter turns narrow the median.
 */
const ROUNDS = byMode({ smoke: 1, quick: 1, standard: 7, full: 7 });
/** Longest wait for autovacuum to go quiet before measuring, and the quiet seconds in a row that count as settled (the quick run must stay short; the smoke run does not wait). */
const SETTLE_MAX_MS = byMode({ smoke: 0, quick: 4_000, standard: 180_000, full: 180_000 });
const SETTLE_QUIET_S = byMode({ smoke: 0, quick: 1, standard: 3, full: 3 });
/** The unmeasured run before each measured one (none in the smoke run). */
const WARM_SECONDS = byMode({ smoke: 0, quick: 0.5, standard: 1, full: 1 });
const POOL_MAX = 10;
/** Cold provisionings (no spare schema ready): the quick run keeps 5 of them (~0.6 s each). */
const COLD_RUNS = byMode({ smoke: 2, quick: 5, standard: 20, full: 20 });
/** Provisionings from a spare schema. */
const SPARE_RUNS = byMode({ smoke: 3, quick: 20, standard: 20, full: 20 });
/** Milliseconds of the in-process argon2 verify loop. */
const ARGON_MS = byMode({ smoke: 200, quick: 2000, standard: 2000, full: 2000 });
/** The lifecycle tenant (export_tenant, floor_export_copy, fork_tenant): its users, and its records (notes and tasks). */
const LIFECYCLE_USERS = byMode({ smoke: 200, quick: 2000, standard: 10_000, full: 10_000 });
const LIFECYCLE_RECORDS = byMode({ smoke: 2000, quick: 20_000, standard: 100_000, full: 100_000 });
/** Rounds of floor_export_copy then export_tenant (the median round of each is kept). */
const EXPORT_ROUNDS = byMode({ smoke: 1, quick: 1, standard: 5, full: 5 });
/** The goals printed beside the lifecycle figures: the export at half its floor's rows/s or more, the fork (at the standard size) under 10 s. */
const EXPORT_GOAL_RATIO = 0.5;
const FORK_GOAL_SECONDS = 10;
/** The audit_analytics tenant's audit rows (over 60 days; BENCH_AUDIT_ROWS to change them), and its rounds of turns. */
const AUDIT_ROWS = Number(process.env.BENCH_AUDIT_ROWS ?? byMode({ smoke: 20_000, quick: 200_000, standard: 1_000_000, full: 1_000_000 }));
const AUDIT_ROUNDS = byMode({ smoke: 1, quick: 1, standard: 3, full: 3 });
/** The search tenant's searchable rows (BENCH_SEARCH_ROWS to change them), and its rounds of turns. */
const SEARCH_ROWS = Number(process.env.BENCH_SEARCH_ROWS ?? byMode({ smoke: 2_000, quick: 100_000, standard: 100_000, full: 100_000 }));
const SEARCH_ROUNDS = byMode({ smoke: 1, quick: 1, standard: 3, full: 3 });
/** The service's setting, passed to the floor too (it prepares its statement when the service does). */
const PREPARED_STATEMENTS = process.env.DATABASE_PREPARED_STATEMENTS ?? String(DEFAULT_PREPARED_STATEMENTS);
const PASSWORD = 'benchmark password 123';
const RUNTIME_ROLE = EMBEDDED_ROLES.runtime;
/** The service's per-tenant roles (DATABASE_TENANT_ROLES=false to measure without them). */
const TENANT_ROLES = process.env.DATABASE_TENANT_ROLES ?? 'true';
const SECRET = 'benchmark-secret-benchmark-secret-0123456789';
const ROOT = path.resolve(import.meta.dirname, '..');

interface Scenario {
  name: string;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  floor?: string;
  ratio_to_floor?: number;
  /** rps and p99 of each turn, when the scenario ran in turns with its floor. */
  rounds?: number[];
  p99_rounds?: number[];
  /** The ratio to the floor's turn of the same round, for each round, and their median: the
   * machine's speed drifts between rounds, and a round's floor and reads run seconds apart. */
  ratio_rounds?: number[];
  ratio_paired?: number;
  /** All the scenario's turns against all its floor's (their rps summed: turns of equal length), every turn counted. */
  ratio_all_turns?: number;
  /** rps of the floor's turns a scenario was paired with, when they are not the floor scenario's own (refresh). */
  floor_rounds?: number[];
  /** CPU microseconds per request: the service, the floor, PostgreSQL (all its processes), the load generator. */
  cpu_us_per_request?: Record<string, number>;
  /** oidc_token: its rate against `refresh`'s (the goal is 0.5 or more). */
  ratio_to_refresh?: number;
}

/** The processes whose CPU each load reports (set once they run). */
const watched: Record<string, number> = {};

/** a / b to three decimals: two would round 0.797 up to a target of 0.80. */
const ratioOf = (a: number, b: number) => Number((a / b).toFixed(3));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const startedAt = performance.now();
function log(message: string) {
  process.stderr.write(`[bench ${((performance.now() - startedAt) / 1000).toFixed(1)} s] ${message}\n`);
}

function child(script: string, env: Record<string, string>, ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (c: Buffer) => {
      out += c.toString();
      const match = out.match(ready);
      if (match) resolve({ proc, match });
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`${script} exited (${code}): ${out.slice(-2000)}`)));
  });
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

/**
 * The memory of one PostgreSQL cluster: the proportional set size (shared buffers split among
 * the processes that touch them) of the postmaster and all its children, and how many.
 */
async function postgresMemory(pgData: string): Promise<{ pss_mb: number; processes: number }> {
  const postmaster = Number((await readFile(path.join(pgData, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const pids = [postmaster];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Fields after the command name (which may hold spaces): state, then the parent's pid.
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) pids.push(Number(entry));
  }
  let pss = 0;
  for (const pid of pids) pss += Number(/^Pss:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => ''))?.[1] ?? 0);
  return { pss_mb: Math.round(pss / 1024), processes: pids.length };
}

/**
 * Runs `run` (a create_user load in a tenant) with a webhook endpoint of that tenant receiving
 * every user.created in this process, then waits for the stragglers: events per second
 * delivered (first event to last arrival) and the latency from each event's time (its
 * transaction's start, so the transaction's own time is in it) to its arrival.
 */
async function webhookDelivery(name: string, base: string, adminToken: string, events: string[], run: (headers: Record<string, string>) => Promise<Scenario>) {
  const arrivals: { at: number; occurred: number; id: string }[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const event = JSON.parse(body) as { id: string; occurred_at: string };
      arrivals.push({ at: Date.now(), occurred: Date.parse(event.occurred_at), id: event.id });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const headers = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
  const made = await fetch(`${base}/api/v1/tenants/t2/webhooks`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ url: `http://127.0.0.1:${(receiver.address() as net.AddressInfo).port}/`, events }),
  });
  if (made.status !== 201) throw new Error(`webhook: ${made.status} ${await made.text()}`);
  const hookId = ((await made.json()) as { id: string }).id;
  try {
    const loadResult = await run({ authorization: headers.authorization });
    // Every user made in the run (the load's answers are 201s) is delivered within seconds.
    const expected = Math.round(loadResult.rps * SECONDS);
    const until = Date.now() + 30_000;
    while (arrivals.length < expected * 0.98 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    const latencies = arrivals.map((a) => a.at - a.occurred).sort((a, b) => a - b);
    const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    const span = arrivals.length > 1 ? (Math.max(...arrivals.map((a) => a.at)) - Math.min(...arrivals.map((a) => a.occurred))) / 1000 : 1;
    const delivery = {
      delivered: arrivals.length,
      distinct: new Set(arrivals.map((a) => a.id)).size,
      events_per_s: Math.round(arrivals.length / span),
      p50_ms: pick(0.5),
      p99_ms: pick(0.99),
      max_ms: latencies.at(-1) ?? 0,
    };
    log(`${name}: ${delivery.delivered} events (${delivery.distinct} distinct), ${delivery.events_per_s}/s, commit to receiver p50 ${delivery.p50_ms} ms, p99 ${delivery.p99_ms} ms, max ${delivery.max_ms} ms`);
    return { load: loadResult, delivery };
  } finally {
    await fetch(`${base}/api/v1/tenants/t2/webhooks/${hookId}`, { method: 'DELETE', headers });
    receiver.close();
  }
}

/** Measured runs that got errors or non-2xx answers: such a measurement does not count. */
const failedLoads: { name: string; errors: number }[] = [];

/** Runs the load generator (bench/load.ts) in a child process and reads its result. */
async function load(name: string, url: string, options: Partial<Omit<LoadSpec, 'url'>> = {}): Promise<Scenario> {
  const spec: LoadSpec = { url, method: options.method ?? 'GET', headers: options.headers ?? {}, body: options.body, seconds: options.seconds ?? TURN_SECONDS, warmSeconds: WARM_SECONDS, sampleMs: SAMPLE_MS, connections: options.connections ?? CONNECTIONS, rate: options.rate, kind: options.kind, refreshTokens: options.refreshTokens, oidcCodes: options.oidcCodes, redirectUri: options.redirectUri, paths: options.paths, watch: watched };
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify(spec)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20 });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Omit<Scenario, 'name'>;
  const cpu = result.cpu_us_per_request ? `, CPU us/request ${Object.entries(result.cpu_us_per_request).map(([k, v]) => `${k} ${v}`).join(' ')}` : '';
  log(`${name}: ${result.rps} rps, p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms${result.errors ? `, ${result.errors} errors` : ''}${cpu}`);
  if (result.errors) failedLoads.push({ name, errors: result.errors });
  return { name, ...result };
}

/** Compiles the service into bench/.build (beside the project's node_modules) with `npm run build`'s script. */
async function buildService(): Promise<string> {
  const out = path.join(ROOT, 'bench/.build');
  await rm(out, { recursive: true, force: true });
  const t = performance.now();
  await execFileAsync(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), out], { cwd: ROOT });
  log(`service compiled in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  return path.join(out, 'main.js');
}

/** Runs `fn` as the cluster's superuser (CHECKPOINT and ALTER SYSTEM need it; the harness's owner is not one). */
async function asSuperuser(superuserUrl: string, fn: (db: Database['db']) => Promise<unknown>): Promise<void> {
  const admin = createDatabase({ url: superuserUrl, max: 1, connectionTimeoutMs: 10_000, applicationName: 'system-service-bench' });
  try {
    await fn(admin.db);
  } finally {
    await admin.close();
  }
}

async function checkpoint(superuserUrl: string): Promise<void> {
  await asSuperuser(superuserUrl, (db) => sql`CHECKPOINT`.execute(db));
}

/**
 * The large cluster's population is set-up, not a measurement: it is written without fsync, and
 * the cluster is made durable (settings restored, CHECKPOINT, sync) before anything is measured.
 */
const BULK_SETTINGS = ['fsync', 'synchronous_commit', 'full_page_writes'];
async function bulkLoad(superuserUrl: string, on: boolean): Promise<void> {
  await asSuperuser(superuserUrl, async (db) => {
    for (const name of BULK_SETTINGS) await sql.raw(on ? `ALTER SYSTEM SET ${name} = off` : `ALTER SYSTEM RESET ${name}`).execute(db);
    await sql`SELECT pg_reload_conf()`.execute(db);
    if (!on) await sql`CHECKPOINT`.execute(db);
  });
  if (!on) await execFileAsync('sync');
}

async function main() {
  const started = Date.now();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'system-service-bench-'));
  /** The clusters started (the second one holds the LARGE tenants), with the harness's pool on each. */
  const clusters: { pg: EmbeddedPostgres; dir: string; database: Database }[] = [];
  const cluster = async (dir: string) => {
    await mkdir(dir, { recursive: true });
    const pg = await startEmbeddedPostgres({ dataDir: dir });
    // The harness provisions as the owner, with the service's tenant roles; the service answers
    // as the runtime role, as in production. The floor reads as the owner (plain rights, no role to set).
    const database = createDatabase({ url: pg.ownerUrl, max: POOL_MAX, connectionTimeoutMs: 10_000, applicationName: 'system-service-bench' });
    clusters.push({ pg, dir, database });
    await migratePlatform(database.db, RUNTIME_ROLE);
    const tenantRole = TENANT_ROLES === 'true' ? tenantRoleNamer(await currentDatabase(database.db)) : undefined;
    return { url: pg.runtimeUrl, ownerUrl: pg.ownerUrl, superuserUrl: pg.url, pgData: pg.dataDir, db: database.db, roles: { runtimeRole: RUNTIME_ROLE, tenantRole } };
  };
  const children: ChildProcess[] = [];
  try {
    const { url: smallUrl, ownerUrl: smallOwnerUrl, superuserUrl: smallSuperuserUrl, pgData: smallPgData, db, roles } = await cluster(dataDir);
    const version = (await sql<{ v: string }>`SELECT current_setting('server_version') AS v`.execute(db)).rows[0]!.v;
    const schemas = new SchemaManager(db, tenantMigrations, roles);

    // Provisioning: cold, then from a spare (in steady state: the pool refilled between tenants).
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return performance.now() - t;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const cold: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) cold.push(await time(() => schemas.initializeTenantSchema(null, `tenant_cold_${i}`)));
    const spares = new SchemaManager(db, tenantMigrations, { spares: 2, ...roles });
    const warm: number[] = [];
    for (let i = 0; i < SPARE_RUNS; i++) {
      await spares.replenishSpares();
      warm.push(await time(() => spares.initializeTenantSchema(null, `tenant_warm_${i}`)));
    }
    await spares.close();
    log(`provision_tenant: cold median ${median(cold).toFixed(0)} ms, from a spare median ${median(warm).toFixed(0)} ms`);

    // Tenants with users: the first SMALL ones are the measured ones.
    const hash = await hashPassword(PASSWORD);
    /** Tenants t<from>..t<to - 1> in the cluster of `db`, 50 users each, the first SMALL analyzed. */
    const register = async (db: Database['db'], from: number, to: number, managed = roles) => {
      const rows = Array.from({ length: to - from }, (_, i) => ({ slug: `t${from + i}`, name: `Tenant ${from + i}`, schema_name: `tenant_t${from + i}` }));
      for (let i = 0; i < rows.length; i += 500) await db.withSchema('shared').insertInto('tenants').values(rows.slice(i, i + 500)).execute();
      const t = performance.now();
      const result = await new SchemaManager(db, tenantMigrations, managed).migrateAll({ concurrency: 2 });
      const seconds = (performance.now() - t) / 1000;
      log(`provisioned ${result.migrated} tenants in ${seconds.toFixed(1)} s`);
      // Two seeders, one tenant at a time each.
      let nextTenant = from;
      const seeder = async () => {
        for (let i = nextTenant++; i < to; i = nextTenant++) await seedUsers(db, i);
      };
      await Promise.all([seeder(), seeder()]);
      // Bulk-seeded tables have no planner statistics yet: autovacuum analyzes a table only after
      // more than 50 changes (+10%), which a running tenant's logins and edits reach but this
      // seeding (50 users) does not. The measured tenants are analyzed as a running system's
      // would be; the floor and the service read the same tables, so both sides gain alike.
      for (let i = from; i < Math.min(to, SMALL); i++) {
        const tables = await sql<{ t: string }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = ${`tenant_t${i}`}`.execute(db);
        for (const { t } of tables.rows) await sql`ANALYZE ${sql.id(`tenant_t${i}`, t)}`.execute(db);
      }
      return seconds;
    };
    /** Tenant t<i>'s 50 users, the first an admin and every other one with the default role, as the API would leave them. */
    const seedUsers = async (db: Database['db'], i: number) => {
      const tdb = tenantDb(db, `tenant_t${i}`);
      const roles = await tdb.selectFrom('roles').select(['id', 'name']).where('name', 'in', ['admin', 'user']).execute();
      const roleId = (name: string) => roles.find((r) => r.name === name)!.id;
      const users = await tdb
        .insertInto('users')
        .values(Array.from({ length: 50 }, (_, u) => ({ email: `user${u}@t${i}.example`, first_name: `User ${u}`, password_hash: hash })))
        .returning('id')
        .execute();
      await tdb.insertInto('user_roles').values(users.map((u, n) => ({ user_id: u.id, role_id: roleId(n === 0 ? 'admin' : 'user') }))).execute();
    };
    await register(db, 0, SMALL);

    const envOf = (databaseUrl: string, ownerUrl: string, dir: string) => ({ DATABASE_URL: databaseUrl, DATABASE_OWNER_URL: ownerUrl, DATABASE_POOL_MAX: String(POOL_MAX), DATABASE_PREPARED_STATEMENTS: PREPARED_STATEMENTS, JWT_SECRET_KEY: SECRET, ENVIRONMENT: 'test', LOG_LEVEL: 'warn', SPARE_SCHEMAS: '0', SERVICE_HOST: '127.0.0.1', SERVICE_PORT: '0', DATABASE_TENANT_ROLES: TENANT_ROLES, AUTH_RATE_LIMIT_PER_MINUTE: '1000000', UV_THREADPOOL_SIZE: '4', DATA_DIR: dir });
    const env = envOf(smallUrl, smallOwnerUrl, dataDir);
    // BENCH_PROFILE_DIR=dir: the service writes a CPU profile there when it stops (node --cpu-prof).
    const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_PROFILE_DIR)}`] : [];
    // The standard and full runs measure the service as deployed: compiled (`npm run build`'s
    // output, built here into a folder of its own); the quick and smoke runs start it from
    // source (tsx, ~40 MB more resident memory, the same speed once loaded).
    const entry = short ? ['--import', 'tsx', 'src/main.ts'] : [await buildService()];
    /** Starts the service on a cluster; the service logs at warn (no per-request lines), so readiness is polled on /health. */
    const startService = async (serviceEnv: Record<string, string>) => {
      const port = await freePort();
      const proc = spawn(process.execPath, [...profile, ...entry], { cwd: ROOT, env: { ...process.env, ...serviceEnv, SERVICE_PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` }, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(proc);
      for (let i = 0; ; i++) {
        if (proc.exitCode !== null) throw new Error('the service exited during start-up');
        if (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok).catch(() => false)) break;
        if (i > 600) throw new Error('the service did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      return { pid: proc.pid!, base: `http://127.0.0.1:${port}` };
    };
    // The service and the floor start side by side (nothing is measured yet); each one that
    // started is stopped at the end, whichever failed.
    const [serviceStart, floorStart] = await Promise.allSettled([startService(env), child('bench/floor.ts', { ...env, DATABASE_URL: smallOwnerUrl, FLOOR_HASH: hash }, /FLOOR_PORT=(\d+)/)]);
    if (floorStart.status === 'fulfilled') children.push(floorStart.value.proc);
    if (serviceStart.status === 'rejected') throw serviceStart.reason;
    if (floorStart.status === 'rejected') throw floorStart.reason;
    const [service, floor] = [serviceStart.value, floorStart.value];
    const base = service.base;
    const floorBase = `http://127.0.0.1:${floor.match[1]}`;
    watched.service = service.pid;
    watched.floor = floor.proc.pid!;

    // Provisioning leaves autovacuum analyzing the new tables for a while: every measurement
    // starts from the steady state after it (the wait is bounded and recorded).
    const settleAutovacuum = async (db: Database['db']) => {
      const settle = performance.now();
      for (let quiet = 0; quiet < SETTLE_QUIET_S && performance.now() - settle < SETTLE_MAX_MS; ) {
        const { n } = (await sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`.execute(db)).rows[0]!;
        quiet = Number(n) === 0 ? quiet + 1 : 0;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const seconds = Math.round((performance.now() - settle) / 1000);
      log(`autovacuum settled after ${seconds} s`);
      return seconds;
    };
    await settleAutovacuum(db);

    const loginAt = async (serviceBase: string, tenant: string, email: string) => {
      const res = await fetch(`${serviceBase}/api/v1/tenants/${tenant}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
      if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { access_token: string; refresh_token: string; user: { id: string } };
    };
    const loginAs = (tenant: string, email: string) => loginAt(base, tenant, email);
    const session = await loginAs('t0', 'user0@t0.example');
    const auth = { authorization: `Bearer ${session.access_token}` };
    /** The id of user7 of a tenant: the user every read of that tenant asks for. */
    const targetIn = async (db: Database['db'], tenant: string) =>
      (await tenantDb(db, `tenant_${tenant}`).selectFrom('users').select('id').where('email', '=', `user7@${tenant}.example`).executeTakeFirstOrThrow()).id;
    const target = await targetIn(db, 't0');
    /** The reads of one tenant through one service: the same user and page every time. */
    const readsOf = (serviceBase: string, tenant: string, user: string, headers: Record<string, string>) => ({
      get: (name: string, seconds?: number) => load(name, `${serviceBase}/api/v1/tenants/${tenant}/users/${user}`, { headers, seconds }),
      list: (name: string, seconds?: number) => load(name, `${serviceBase}/api/v1/tenants/${tenant}/users?page_size=20`, { headers, seconds }),
      // The same read through GraphQL (§12): one user's id, email and roles.
      graphql: (name: string, seconds?: number) =>
        load(name, `${serviceBase}/api/v1/tenants/${tenant}/graphql`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ query: 'query ($id: ID!) { user(id: $id) { id email roles } }', variables: { id: user } }),
          seconds,
        }),
    });
    // The reads measured in turns with the floor.
    const read = { floor: (name: string, seconds?: number) => load(name, `${floorBase}/floor/tenant_t0/users/${target}`, { seconds }), ...readsOf(base, 't0', target, auth) };

    const scenarios: Scenario[] = [];
    const withFloor = (s: Scenario, floorScenario: Scenario): Scenario => ({ ...s, floor: floorScenario.name, ratio_to_floor: ratioOf(s.rps, floorScenario.rps) });

    // The floor and the reads it anchors run in turns (ROUNDS of each), and each keeps its median
    // round: the machine's drift over a run then moves both sides alike.
    // A freshly started service compiles its hot paths (JIT, validators, serializers) during its
    // first seconds under load: both processes get that time before anything is measured.
    // The service has far more code to compile than the floor: in runs with 2 s of warm-up its
    // first turn still ran ~15% below its third. (Every load also starts with an unmeasured
    // second; the quick run relies on that alone, the smoke run has neither.)
    const warmUp = async (reads: ReturnType<typeof readsOf>, suffix: string) => {
      if (short) return;
      await reads.get(`warm-up get_user${suffix}`, 5);
      await reads.list(`warm-up list_users${suffix}`, 5);
      await reads.graphql(`warm-up graphql_get_user${suffix}`, 5);
    };
    if (!short) await read.floor('warm-up floor', 5);
    await warmUp(read, '');
    /** ROUNDS rounds of the given turns, in their order within each round: each turn's runs, round by round. */
    const inRounds = async <K extends string>(turnsOf: Record<K, () => Promise<Scenario>>): Promise<Record<K, Scenario[]>> => {
      const names = Object.keys(turnsOf) as K[];
      const runs = Object.fromEntries(names.map((n) => [n, [] as Scenario[]])) as Record<K, Scenario[]>;
      for (let round = 0; round < ROUNDS; round++) for (const n of names) runs[n].push(await turnsOf[n]());
      return runs;
    };
    const rounds = await inRounds({ floor: () => read.floor('floor_get_user'), get: () => read.get('get_user'), list: () => read.list('list_users'), graphql: () => read.graphql('graphql_get_user') });
    // The median turn by rps; its latencies are the medians of the turns' own (one slow turn, such
    // as the first after provisioning, moves neither side of a p99 comparison).
    const medianRound = (runs: Scenario[]): Scenario => ({
      ...[...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!,
      p50_ms: median(runs.map((r) => r.p50_ms)),
      p99_ms: median(runs.map((r) => r.p99_ms)),
      rounds: runs.map((r) => r.rps),
      p99_rounds: runs.map((r) => r.p99_ms),
    });
    /** A scenario measured in turns against its floor's turns: the ratio of the median turns, the paired ratios, and all turns against all. */
    const turns = (runs: Scenario[], floorRuns: Scenario[], floor: Scenario): Scenario => {
      const ratios = runs.map((r, i) => ratioOf(r.rps, floorRuns[i]!.rps));
      const total = (xs: Scenario[]) => xs.reduce((sum, r) => sum + r.rps, 0);
      return { ...withFloor(medianRound(runs), floor), ratio_rounds: ratios, ratio_paired: median(ratios), ratio_all_turns: ratioOf(total(runs), total(floorRuns)) };
    };
    const floorGet = medianRound(rounds.floor);
    scenarios.push(floorGet);
    const restGet = turns(rounds.get, rounds.floor, floorGet);
    scenarios.push(restGet);
    scenarios.push(turns(rounds.list, rounds.floor, floorGet));
    // GraphQL's read against the REST read of the same turns (goal: at least 0.7 of its rate).
    scenarios.push(turns(rounds.graphql, rounds.get, restGet));
    // Metrics recording (§16): two fresh services alike but for METRICS=true|false, in turns;
    // the ratio of on to off should sit in the noise.
    const metricsServices = { on: await startService({ ...env, METRICS: 'true' }), off: await startService({ ...env, METRICS: 'false' }) };
    const metricsReads = (which: 'on' | 'off') => {
      const svc = metricsServices[which];
      const reads = readsOf(svc.base, 't0', target, auth);
      return (name: string, seconds?: number) => {
        watched.service = svc.pid;
        return reads.get(name, seconds);
      };
    };
    const [getOn, getOff] = [metricsReads('on'), metricsReads('off')];
    // Fresh services: their first requests open connections and fill caches (not measured).
    await getOn('warm-up get_user_metrics_on', short ? 0.5 : 5);
    await getOff('warm-up get_user_metrics_off', short ? 0.5 : 5);
    const metricsRounds = await inRounds({ off: () => getOff('get_user_metrics_off'), on: () => getOn('get_user_metrics_on') });
    const metricsOff = medianRound(metricsRounds.off);
    scenarios.push(metricsOff, turns(metricsRounds.on, metricsRounds.off, metricsOff));
    for (const svc of Object.values(metricsServices)) process.kill(svc.pid);
    watched.service = service.pid;
    // Users are created in another tenant (t2): t0 keeps its 50 users, so the reads at 2,000
    // tenants list the same page of the same tenant as at 10 (a list over the ~2,000 users
    // create_user leaves behind is a different measure).
    const writer = { authorization: `Bearer ${(await loginAs('t2', 'user0@t2.example')).access_token}` };
    scenarios.push(withFloor(await load('create_user', `${base}/api/v1/tenants/t2/users`, { method: 'POST', headers: writer, kind: 'new-user', seconds: SECONDS }), floorGet));
    // Webhooks: the same create_user load in t2, now with an endpoint (a receiver in this process)
    // takes every user.created; from each event's time to its arrival, and the rate delivered.
    const webhook = await webhookDelivery('webhook_delivery', base, (await loginAs('t2', 'user0@t2.example')).access_token, ['user.created'], (headers) =>
      load('create_user_with_webhook', `${base}/api/v1/tenants/t2/users`, { method: 'POST', headers, kind: 'new-user', seconds: SECONDS }),
    );
    scenarios.push(withFloor(webhook.load, floorGet));
    // The goal's rate: 200 events per second, steady (notes: create_user cannot reach it on two cores).
    const steady = await webhookDelivery('webhook_delivery_200', base, (await loginAs('t2', 'user0@t2.example')).access_token, ['note.created'], (headers) =>
      load('create_note_200_per_s', `${base}/api/v1/tenants/t2/notes`, { method: 'POST', headers, body: JSON.stringify({ title: 'Bench note', content: 'Written at a steady rate' }), rate: 200, seconds: SECONDS }),
    );
    // Login against the raw verify, in turns like the reads.
    const logins = await inRounds({
      floor: () => load('floor_argon2_verify', `${floorBase}/floor/argon2`, { method: 'POST', body: '{}', seconds: LOGIN_TURN_SECONDS }),
      login: () => load('login', `${base}/api/v1/tenants/t0/auth/login`, { method: 'POST', body: JSON.stringify({ email: 'user1@t0.example', password: PASSWORD }), seconds: LOGIN_TURN_SECONDS }),
    });
    const floorArgon = medianRound(logins.floor);
    scenarios.push(floorArgon);
    scenarios.push(turns(logins.login, logins.floor, floorArgon));

    // Refresh, after the reads (its logins and writes stay out of their turns), in turns with a
    // floor turn of its own just before each: live refresh tokens of 16 new sessions for each
    // turn, each answer's rotated token used for a later request of the turn.
    const refreshTokens = async () => (await Promise.all(Array.from({ length: CONNECTIONS * 2 }, (_, i) => loginAs('t0', `user${10 + i}@t0.example`)))).map((c) => c.refresh_token);
    let tokens: string[] = [];
    const refreshes = await inRounds({
      // The round's sessions first, so that the floor turn runs right before the refresh turn.
      floor: async () => {
        tokens = await refreshTokens();
        return read.floor('floor_get_user (before refresh)');
      },
      refresh: () => load('refresh', `${base}/api/v1/tenants/t0/auth/refresh`, { method: 'POST', kind: 'refresh', refreshTokens: tokens }),
    });
    const refreshFloor = medianRound(refreshes.floor);
    const refreshScenario: Scenario = { ...turns(refreshes.refresh, refreshes.floor, refreshFloor), floor: floorGet.name, floor_rounds: refreshes.floor.map((r) => r.rps) };
    scenarios.push(refreshScenario);

    // OpenID Connect: t0's token endpoint, beside our own refresh (goal: at least half its rate).
    // Each connection's first requests exchange authorization codes (minted through the pages
    // beforehand), then each follows the refresh_token grant with the token its answer carried.
    const oidcClient = await registerClient(db, 't0', base);
    const codes = await mintCodes(base, 't0', oidcClient, 'user0@t0.example', PASSWORD, CONNECTIONS);
    const oidcToken = await load('oidc_token', `${base}/api/v1/tenants/t0/oidc/token`, {
      method: 'POST',
      headers: { authorization: oidcClient.authorization, 'content-type': 'application/x-www-form-urlencoded' },
      kind: 'oidc-token',
      oidcCodes: codes,
      redirectUri: oidcClient.redirectUri,
    });
    scenarios.push({ ...withFloor(oidcToken, floorGet), ratio_to_refresh: ratioOf(oidcToken.rps, refreshScenario.rps) });

    // Scale: the same reads with LARGE tenants provisioned, in a cluster of their own with a
    // service of its own, measured in turns with the 10-tenant service. Both sizes run side by
    // side because this machine's speed drifts over the minutes provisioning takes (run X
    // measured the 10-tenant reads before it: the floor's p99 went 4.73 -> 6.86 ms across it,
    // 1.45, and `get_user`'s 5.33 -> 7.03). Both read tenant t1, untouched by the scenarios
    // above, seeded and analyzed alike in both clusters.
    const largeDir = path.join(dataDir, 'large');
    const large = await cluster(largeDir);
    await bulkLoad(large.superuserUrl, true);
    const populatedSeconds = await register(large.db, 0, LARGE, large.roles);
    // Durable again before anything is measured; the provisioning's WAL would otherwise be
    // checkpointed (written and fsynced) during the scale runs.
    await bulkLoad(large.superuserUrl, false);
    // Provisioning one more tenant with LARGE already there, durably: cold, then from a spare.
    const coldAtScale: number[] = [];
    const largeSchemas = new SchemaManager(large.db, tenantMigrations, large.roles);
    for (let i = 0; i < COLD_RUNS; i++) coldAtScale.push(await time(() => largeSchemas.initializeTenantSchema(null, `tenant_cold_${i}`)));
    const largeSpares = new SchemaManager(large.db, tenantMigrations, { spares: 2, ...large.roles });
    const warmAtScale: number[] = [];
    for (let i = 0; i < SPARE_RUNS; i++) {
      await largeSpares.replenishSpares();
      warmAtScale.push(await time(() => largeSpares.initializeTenantSchema(null, `tenant_warm_${i}`)));
    }
    await largeSpares.close();
    log(`provision_tenant at ${LARGE} tenants: cold median ${median(coldAtScale).toFixed(0)} ms, from a spare median ${median(warmAtScale).toFixed(0)} ms`);
    await checkpoint(large.superuserUrl);
    const settledSeconds = await settleAutovacuum(large.db);
    await settleAutovacuum(db);
    const largeService = await startService(envOf(large.url, large.ownerUrl, largeDir));
    /**
     * One size's reads: tenant t1 through the service of that size, with a fresh access token
     * (the first one, 15 minutes, would expire during these turns). Each load reports that
     * service's CPU, and each get_user turn samples its RSS (the highest kept).
     */
    const sizeOf = async (label: number, svc: { pid: number; base: string }, tenantsDb: Database['db']) => {
      const token = (await loginAt(svc.base, 't1', 'user0@t1.example')).access_token;
      const reads = readsOf(svc.base, 't1', await targetIn(tenantsDb, 't1'), { authorization: `Bearer ${token}` });
      const size = {
        rss: 0,
        warmUp: () => {
          watched.service = svc.pid;
          return warmUp(reads, `@${label}`);
        },
        get: async () => {
          watched.service = svc.pid;
          const run = await reads.get(`get_user@${label}`);
          size.rss = Math.max(size.rss, await rssMb(svc.pid));
          return run;
        },
        list: () => {
          watched.service = svc.pid;
          return reads.list(`list_users@${label}`);
        },
      };
      return size;
    };
    const atSmall = await sizeOf(SMALL, service, db);
    const atLarge = await sizeOf(LARGE, largeService, large.db);
    // The same warm-up at both sizes. (Provisioning 2,000 schemas overflows PostgreSQL's cache
    // invalidation queue: every backend then rebuilds its catalogue caches and replans its
    // prepared statements on first use; in run H, without this warm-up, the first turn's p99
    // was 10 ms against 6 and 7 for the next two.)
    await atLarge.warmUp();
    await atSmall.warmUp();
    // The 10-tenant service has by then served every scenario above: a long-running process
    // beside a fresh one.
    const scale = await inRounds({ getSmall: atSmall.get, getLarge: atLarge.get, listSmall: atSmall.list, listLarge: atLarge.list });
    const [rss, rssSmall] = [atLarge.rss, atSmall.rss];
    // Each cluster's memory and size on disk, with its service connected (after the scale turns).
    const clusterSize = async (pgData: string, clusterDb: Database['db']) => {
      const size = await sql<{ bytes: string; relations: string }>`SELECT pg_database_size(current_database()) AS bytes, (SELECT count(*) FROM pg_class) AS relations`.execute(clusterDb);
      return { ...(await postgresMemory(pgData)), database_mb: Math.round(Number(size.rows[0]!.bytes) / 2 ** 20), pg_class_rows: Number(size.rows[0]!.relations) };
    };
    const postgresAt = { small: await clusterSize(smallPgData, db), large: await clusterSize(large.pgData, large.db) };
    log(`postgres: ${LARGE} tenants ${postgresAt.large.pss_mb} MB in ${postgresAt.large.processes} processes, ${postgresAt.large.database_mb} MB on disk; ${SMALL} tenants ${postgresAt.small.pss_mb} MB, ${postgresAt.small.database_mb} MB`);
    /** p50 and p99 at both sizes (the median turns' rps, the medians of the turns' latencies), their ratio, and each round's. */
    const atScale = (smallRuns: Scenario[], bigRuns: Scenario[]) => {
      const [small, big] = [medianRound(smallRuns), medianRound(bigRuns)];
      const p99Ratio = (b: Scenario, s: Scenario) => ratioOf(b.p99_ms, Math.max(1, s.p99_ms));
      return {
        p50_small_ms: small.p50_ms,
        p99_small_ms: small.p99_ms,
        p50_large_ms: big.p50_ms,
        p99_large_ms: big.p99_ms,
        p99_ratio: p99Ratio(big, small),
        p99_rounds_small: small.p99_rounds,
        p99_rounds_large: big.p99_rounds,
        p99_ratio_rounds: bigRuns.map((b, i) => p99Ratio(b, smallRuns[i]!)),
        rps_small: small.rps,
        rps_large: big.rps,
        cpu_us_per_request_small: small.cpu_us_per_request,
        cpu_us_per_request_large: big.cpu_us_per_request,
      };
    };
    const scaleGet = atScale(scale.getSmall, scale.getLarge);
    const connections = Number(
      (await sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'system-service' AND pid <> pg_backend_pid()`.execute(large.db)).rows[0]!.n,
    );

    // migrate_all: one added column over every tenant.
    const column = `bench_${Date.now().toString(36)}`;
    const next1 = new SchemaManager(large.db, [...tenantMigrations, { version: 9000, name: column, statements: ({ schema }) => [schema.alterTable('users').addColumn(column, 'text')] }], large.roles);
    const migrateAll = await next1.migrateAll({ concurrency: 4 });
    log(`migrate_all over ${migrateAll.total} schemas: ${(migrateAll.duration_ms / 1000).toFixed(1)} s`);

    // Tenant lifecycle, in the 10-tenant cluster once every read of it is done (the seeding's
    // writes stay out of them): one large tenant seeded in SQL, its export through the service
    // in rounds with its floor (the floor first in each), then one fork of it, deleted again.
    const big = await seedLargeTenant(db, schemas, { slug: 'lifecycle', users: LIFECYCLE_USERS, records: LIFECYCLE_RECORDS, passwordHash: hash });
    log(`lifecycle tenant: ${big.users} users, ${big.records} records seeded in ${big.seconds.toFixed(1)} s`);
    // The seeding's WAL is checkpointed now rather than during the rounds.
    await checkpoint(smallSuperuserUrl);
    await settleAutovacuum(db);
    // A system token as the platform's caller would hold, made from the service's own settings.
    const platform = { authorization: `Bearer ${await issueSystemToken(loadJwtKeys(loadConfig({ ...process.env, ...env })), { subject: 'bench', ttlSeconds: 3600 })}` };
    const exportTables = await archivedTables(db, big.schema);
    if (!short) {
      await floorExportCopy(db, big.schema, exportTables);
      await exportOverHttp(base, big.slug, platform);
    }
    const exportRuns: Awaited<ReturnType<typeof exportOverHttp>>[] = [];
    const floorExportRuns: Awaited<ReturnType<typeof floorExportCopy>>[] = [];
    for (let round = 0; round < EXPORT_ROUNDS; round++) {
      floorExportRuns.push(await floorExportCopy(db, big.schema, exportTables));
      const run = await exportOverHttp(base, big.slug, platform);
      // The floor reads exactly the tables the archive holds, or it is no floor.
      if (Object.keys(run.manifest.tables).sort().join() !== exportTables.join()) throw new Error(`export: the archive holds ${Object.keys(run.manifest.tables).join(', ')}; the floor read ${exportTables.join(', ')}`);
      exportRuns.push(run);
    }
    const rowsPerSecond = (r: { rows: number; seconds: number }) => Math.round(r.rows / r.seconds);
    /** The round with the median rows per second. */
    const medianCopy = <T extends { rows: number; seconds: number }>(runs: T[]) => [...runs].sort((a, b) => rowsPerSecond(a) - rowsPerSecond(b))[Math.floor(runs.length / 2)]!;
    const copyFigures = (r: { rows: number; bytes: number; seconds: number }, runs: { rows: number; seconds: number }[]) => ({ rows: r.rows, bytes: r.bytes, seconds: Number(r.seconds.toFixed(3)), rows_per_s: rowsPerSecond(r), rounds: runs.map(rowsPerSecond) });
    const [exportMedian, floorExportMedian] = [medianCopy(exportRuns), medianCopy(floorExportRuns)];
    const exportTenant = {
      ...copyFigures(exportMedian, exportRuns),
      tables: exportTables.length,
      floor: 'floor_export_copy',
      ratio_to_floor: ratioOf(rowsPerSecond(exportMedian), rowsPerSecond(floorExportMedian)),
      ratio_rounds: exportRuns.map((r, i) => ratioOf(rowsPerSecond(r), rowsPerSecond(floorExportRuns[i]!))),
      goal_ratio_to_floor: EXPORT_GOAL_RATIO,
      measured: 'GET /api/v1/tenants/{id}/export (system token) read to its last byte over HTTP from the running service; rows: the sum of the manifest\'s row counts; bytes: the gzip tar archive',
    };
    const floorExport = { ...copyFigures(floorExportMedian, floorExportRuns), measured: 'the same tables of the same schema, one after another on one owner connection: COPY (SELECT row_to_json(t)::text FROM schema.table t) TO STDOUT (pg-copy-streams) into a gzip stream, discarded' };
    log(`export_tenant: ${exportTenant.rows} rows, ${exportTenant.bytes} bytes in ${exportTenant.seconds} s, ${exportTenant.rows_per_s} rows/s; floor_export_copy ${floorExport.rows_per_s} rows/s; ratio ${exportTenant.ratio_to_floor}`);
    const forked = await forkOverHttp(db, base, big.slug, `bench_fork_${Date.now().toString(36)}`, platform);
    const forkTenant = {
      rows: forked.rows,
      seconds: Number(forked.seconds.toFixed(3)),
      rows_per_s: rowsPerSecond(forked),
      delete_seconds: Number(forked.delete_seconds.toFixed(3)),
      goal_seconds: FORK_GOAL_SECONDS,
      measured: 'POST /api/v1/tenants/{id}/fork (system token) to its 201, a new slug per run; rows: those the fork holds; then DELETE ?backup=false, timed apart',
    };
    log(`fork_tenant: ${forkTenant.rows} rows in ${forkTenant.seconds} s, ${forkTenant.rows_per_s} rows/s; deleted in ${forkTenant.delete_seconds} s`);

    // Audit analytics, last in the 10-tenant cluster: one tenant's trail seeded in SQL, read by
    // action and by day over 30 days with one connection (the goal is one request's latency).
    const auditAnalytics = await auditAnalyticsScenario({
      db,
      schemas,
      passwordHash: hash,
      rows: AUDIT_ROWS,
      days: 60,
      rounds: AUDIT_ROUNDS,
      base,
      floorBase,
      token: async (tenant, email) => (await loginAs(tenant, email)).access_token,
      measure: (name, url, headers) => load(name, url, { headers, connections: 1 }),
      settle: async () => {
        await checkpoint(smallSuperuserUrl);
        await settleAutovacuum(db);
      },
      log,
    });

    // Search: one tenant of SEARCH_ROWS searchable rows of every type, seeded in SQL, searched by
    // a user of the default role with a few query shapes in turn, beside the same statement
    // straight through pg.
    // The scale turns left the large cluster's service watched: the CPU figures are this one's.
    watched.service = service.pid;
    const search = await searchScenario({
      db,
      schemas,
      passwordHash: hash,
      rows: SEARCH_ROWS,
      rounds: SEARCH_ROUNDS,
      base,
      floorBase,
      token: async (tenant, email) => (await loginAs(tenant, email)).access_token,
      measure: (name, url, paths, headers, connections) => load(name, url, { headers, paths, connections }),
      warmUp: mode !== 'smoke',
      settle: async () => {
        await checkpoint(smallSuperuserUrl);
        await settleAutovacuum(db);
      },
      log,
    });

    const argonRaw = await (async () => {
      const t = performance.now();
      let n = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (performance.now() - t < ARGON_MS) {
          await verifyPassword(hash, PASSWORD);
          n++;
        }
      }));
      return Math.round(n / ((performance.now() - t) / 1000));
    })();

    const results = {
      mode,
      generated_at: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version, postgres: version, memory_gb: Math.round(os.totalmem() / 2 ** 30) },
      settings: { seconds_per_turn: TURN_SECONDS, seconds_per_login_turn: LOGIN_TURN_SECONDS, seconds_create_user: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, pool_max: POOL_MAX, prepared_statements: Number(PREPARED_STATEMENTS), users_per_tenant: 50, service: short ? 'source (tsx)' : 'compiled' },
      scenarios,
      webhook_delivery: { ...webhook.delivery, measured: 'create_user load in a tenant whose endpoint (in the harness) takes every user.created; latency from the event time (its transaction start) to arrival' },
      webhook_delivery_200: { ...steady.delivery, offered_rps: steady.load.rps, measured: 'notes created at a steady 200 per second in a tenant whose endpoint takes every note.created; latency from the event time to arrival' },
      provision_tenant: { cold_median_ms: Math.round(median(cold)), spare_median_ms: Math.round(median(warm)), runs: SPARE_RUNS, cold_runs: COLD_RUNS },
      provision_at_scale: {
        tenants: LARGE,
        cold_median_ms: Math.round(median(coldAtScale)),
        spare_median_ms: Math.round(median(warmAtScale)),
        populated_seconds: Math.round(populatedSeconds),
        measured: `one more tenant with ${LARGE} there, durably (median of ${COLD_RUNS} cold, ${SPARE_RUNS} from a spare); populated_seconds: the ${LARGE} schemas' creation, two at a time, written without fsync (set-up, made durable before the scale turns)`,
      },
      migrate_all: { tenants: migrateAll.total, seconds: Number((migrateAll.duration_ms / 1000).toFixed(1)), failed: migrateAll.failed.length, concurrency: 4 },
      lifecycle: {
        tenant: { slug: big.slug, users: big.users, records: big.records, seed_s: Number(big.seconds.toFixed(1)), rounds: EXPORT_ROUNDS },
        export_tenant: exportTenant,
        floor_export_copy: floorExport,
        fork_tenant: forkTenant,
      },
      scale: {
        small_tenants: SMALL,
        large_tenants: LARGE,
        autovacuum_settle_s: settledSeconds,
        measured: `tenant t1 in a cluster of ${SMALL} tenants and in one of ${LARGE}, each with a service of its own, in turns`,
        get_user: scaleGet,
        list_users: atScale(scale.listSmall, scale.listLarge),
      },
      memory: {
        service_rss_mb_under_load: rss,
        sampled: `highest of ${ROUNDS} samples, one after each get_user turn at ${LARGE} tenants`,
        tenants: LARGE,
        service_rss_mb_at_small: rssSmall,
        at_small: `the ${SMALL}-tenant service, after every scenario above, sampled the same way`,
      },
      postgres: {
        service_connections: connections,
        pool_max: POOL_MAX,
        memory: `proportional set size of each cluster's processes after the scale turns, its service connected; database_mb: pg_database_size`,
        [`at_${LARGE}`]: postgresAt.large,
        [`at_${SMALL}`]: postgresAt.small,
      },
      audit_analytics: auditAnalytics,
      search,
      raw_argon2_verify_in_process_per_s: argonRaw,
      failed_loads: failedLoads,
      duration_s: Math.round((Date.now() - started) / 1000),
    };
    const resultsDir = process.env.BENCH_RESULTS_DIR ?? path.join(ROOT, 'bench/results');
    await mkdir(resultsDir, { recursive: true });
    const json = `${JSON.stringify(results, null, 2)}\n`;
    await writeFile(path.join(resultsDir, 'latest.json'), json);
    await writeFile(path.join(resultsDir, `${results.generated_at.replace(/[:.]/g, '-')}.json`), json);

    // CPU per request of the process that answered (the service, or the floor for a floor), of PostgreSQL and of the load generator.
    const cpuOf = (s: Scenario) => {
      const c = s.cpu_us_per_request;
      return c ? `${s.name.startsWith('floor') ? c.floor : c.service} / ${c.postgres ?? 0} / ${c.load_generator}` : '';
    };
    const rows = scenarios.map((s) => [s.name, String(s.rps), String(s.p50_ms), String(s.p99_ms), s.floor ?? '', s.ratio_to_floor?.toFixed(3) ?? '', cpuOf(s)]);
    const header = ['scenario', 'rps', 'p50 ms', 'p99 ms', 'floor', 'ratio', 'CPU us/request: server / postgres / load'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const row of [header, ...rows]) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
    const pairs = scenarios.filter((s) => s.ratio_rounds).map((s) => `${s.name} ${s.ratio_paired!.toFixed(3)} (${s.ratio_rounds!.map((r) => r.toFixed(2)).join(', ')})`);
    process.stdout.write(`paired ratios     ${pairs.join('; ')} (each turn against the floor's turn of the same round; median)\n`);
    const totals = scenarios.filter((s) => s.ratio_all_turns !== undefined).map((s) => `${s.name} ${s.ratio_all_turns!.toFixed(3)}`);
    process.stdout.write(`all turns         ${totals.join('; ')} (the requests of all turns against those of all the floor's)\n`);
    process.stdout.write(`provision_tenant  cold ${results.provision_tenant.cold_median_ms} ms (median of ${COLD_RUNS}), from a spare ${results.provision_tenant.spare_median_ms} ms (median of ${SPARE_RUNS})\n`);
    process.stdout.write(`provision @${LARGE}  cold ${results.provision_at_scale.cold_median_ms} ms, from a spare ${results.provision_at_scale.spare_median_ms} ms; ${LARGE} schemas created in ${results.provision_at_scale.populated_seconds} s (no fsync)\n`);
    process.stdout.write(`migrate_all       ${results.migrate_all.tenants} schemas in ${results.migrate_all.seconds} s\n`);
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    const exportRounds = EXPORT_ROUNDS > 1 ? `; rounds ${exportTenant.ratio_rounds.map((r) => r.toFixed(2)).join(', ')}` : '';
    process.stdout.write(`export_tenant     ${exportTenant.rows_per_s} rows/s: ${exportTenant.rows} rows in ${exportTenant.seconds} s, ${mb(exportTenant.bytes)} MB; ${exportTenant.ratio_to_floor.toFixed(3)} of floor_export_copy (goal >= ${EXPORT_GOAL_RATIO}${exportRounds})\n`);
    process.stdout.write(`floor_export_copy ${floorExport.rows_per_s} rows/s: ${floorExport.rows} rows in ${floorExport.seconds} s, ${mb(floorExport.bytes)} MB (${LIFECYCLE_USERS} users, ${LIFECYCLE_RECORDS} records)\n`);
    process.stdout.write(`fork_tenant       ${forkTenant.rows} rows in ${forkTenant.seconds} s, ${forkTenant.rows_per_s} rows/s (goal < ${FORK_GOAL_SECONDS} s at 10000 users, 100000 records); deleted in ${forkTenant.delete_seconds} s\n`);
    const analyticsLine = (g: 'action' | 'day') => {
      const a = auditAnalytics[`by_${g}`];
      return `group_by=${g} p50 ${a.p50_ms} ms, p99 ${a.p99_ms} ms (floor p50 ${a.floor.p50_ms} ms, PostgreSQL ${a.plan.execution_ms} ms)`;
    };
    const alone = search.one_connection;
    process.stdout.write(`search            ${search.search.rps} rps, p50 ${search.search.p50_ms} ms, p99 ${search.search.p99_ms} ms; floor_search ${search.floor_search.rps} rps, p99 ${search.floor_search.p99_ms} ms; ratio ${search.search.ratio_to_floor.toFixed(3)}; one connection p50 ${alone.search.p50_ms} ms, p99 ${alone.search.p99_ms} ms (floor p99 ${alone.floor_search.p99_ms} ms) (goals: p99 < ${search.goal_p99_ms} ms, ratio >= ${search.goal_ratio_to_floor}; ${search.tenant.rows} rows, ${search.queries.length} queries in turn)\n`);
    process.stdout.write(`audit_analytics   ${analyticsLine('action')}; ${analyticsLine('day')}; ${auditAnalytics.tenant.rows} rows over ${auditAnalytics.tenant.days} days, ${auditAnalytics.range_days}-day range (goal < ${auditAnalytics.goal_ms} ms)\n`);
    process.stdout.write(`scale             get_user p99 ${scaleGet.p99_small_ms} ms @${SMALL} -> ${scaleGet.p99_large_ms} ms @${LARGE}: ${scaleGet.p99_ratio.toFixed(3)} (turns ${scaleGet.p99_ratio_rounds.map((r) => r.toFixed(2)).join(', ')}); service RSS ${rss} MB (the ${SMALL}-tenant one ${rssSmall} MB); ${connections} PostgreSQL connections (pool max ${POOL_MAX})\n`);
    process.stdout.write(`postgres          ${postgresAt.large.pss_mb} MB at ${LARGE} tenants (${postgresAt.large.database_mb} MB on disk), ${postgresAt.small.pss_mb} MB at ${SMALL}\n`);
    for (const f of failedLoads) process.stdout.write(`NOT VALID         ${f.name}: ${f.errors} errors or non-2xx answers\n`);
    process.stdout.write(`written           ${path.relative(ROOT, path.join(resultsDir, 'latest.json'))} (${results.duration_s} s)\n`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await Promise.all(
      clusters.map(async ({ pg, dir, database }) => {
        await database.close();
        await pg.stop();
        // As root the cluster may live elsewhere (src/db/embedded.ts): that folder goes too.
        if (path.dirname(pg.dataDir) !== dir) await rm(path.dirname(pg.dataDir), { recursive: true, force: true });
      }),
    );
    await rm(dataDir, { recursive: true, force: true });
    await rm(path.join(ROOT, 'bench/.build'), { recursive: true, force: true });
  }
}

await main();
