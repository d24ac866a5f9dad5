/**
 * The audit analytics scenario of bench/run.ts: one tenant whose audit trail holds many rows
 * (a million in the standard run), filled in SQL, read through `GET audit-logs/analytics` beside
 * a floor that runs the same statement straight through pg (bench/floor.ts).
 */
import { sql, type Kysely } from 'kysely';
import { analyticsStatement, resolveAnalyticsQuery, type GroupBy } from '../src/audit/analytics.js';
import { tenantDb } from '../src/db/database.js';
import type { PlatformDatabase } from '../src/db/platform-types.js';
import type { SchemaManager } from '../src/tenancy/schema-manager.js';
import { planScans, type ExplainRow, type Turn } from './plan.js';

type Db = Kysely<PlatformDatabase>;

/** What an audit row records, weighted by repetition: [action, entity_type, actor_type]. */
const KINDS: readonly [string, string | null, string][] = [
  ['auth.login', 'users', 'user'],
  ['auth.login', 'users', 'user'],
  ['auth.login', 'users', 'user'],
  ['auth.logout', 'user_sessions', 'user'],
  ['auth.login_failed', 'users', 'anonymous'],
  ['users.update', 'users', 'user'],
  ['users.create', 'users', 'user'],
  ['notes.create', 'notes', 'user'],
  ['notes.create', 'notes', 'user'],
  ['notes.update', 'notes', 'user'],
  ['tasks.create', 'tasks', 'user'],
  ['tasks.update', 'tasks', 'user'],
  ['roles.update', 'roles', 'user'],
  ['settings.update', 'settings', 'api_key'],
  ['auth.permission_denied', null, 'user'],
  ['tenant.maintenance', null, 'system'],
];

/** The range every measured request asks for: the last 30 days, fixed for the whole run. */
export const ANALYTICS_RANGE_DAYS = 30;

export interface AuditTenant {
  readonly slug: string;
  readonly schema: string;
  readonly email: string;
  readonly rows: number;
  readonly days: number;
  readonly seconds: number;
}

/**
 * Registers and provisions tenant `slug` with one admin (password hash given), then fills its
 * audit trail with `rows` rows spread evenly over the last `days` days, in time order as a
 * running service writes them: 16 kinds of row, 500 acting users. Vacuumed and analyzed, as
 * autovacuum leaves an insert-only table.
 *
 * Audit rows are hash-chained (migration 9): the fill numbers its rows after the chain's head
 * and moves the head past them, with a placeholder hash (md5), so the tenant stays writable;
 * its chain does not verify, which nothing here asks.
 */
export async function seedAuditTenant(db: Db, schemas: SchemaManager, options: { slug: string; rows: number; days: number; passwordHash: string }): Promise<AuditTenant> {
  const t = performance.now();
  const { slug, rows, days } = options;
  const schema = `tenant_${slug}`;
  const { id } = await db.withSchema('shared').insertInto('tenants').values({ slug, name: 'Bench audit tenant', schema_name: schema }).returning('id').executeTakeFirstOrThrow();
  await schemas.initializeTenantSchema(id, schema);
  const tdb = tenantDb(db, schema);
  const email = `admin@${slug}.example`;
  const admin = await tdb.insertInto('users').values({ email, password_hash: options.passwordHash }).returning('id').executeTakeFirstOrThrow();
  const role = await tdb.selectFrom('roles').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
  await tdb.insertInto('user_roles').values({ user_id: admin.id, role_id: role.id }).execute();

  const table = sql.id(schema, 'audit_logs');
  const columns = await sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = 'audit_logs'`.execute(db);
  const chained = columns.rows.some((c) => c.name === 'seq') && columns.rows.some((c) => c.name === 'hash');
  const head = sql.id(schema, 'audit_chain');
  const hasHead = chained && (await sql<{ ok: boolean }>`SELECT to_regclass(${`${schema}.audit_chain`}) IS NOT NULL AS ok`.execute(db)).rows[0]!.ok;
  const after = chained ? Number((await sql<{ n: string }>`SELECT coalesce(max(seq), 0) AS n FROM ${table}`.execute(db)).rows[0]!.n) : 0;
  const kinds = sql.join(KINDS.map(([action, entity, actor], k) => sql`(${k}::int, ${action}::text, ${entity}::text, ${actor}::text)`));
  await sql`
    INSERT INTO ${table} (actor_user_id, actor_type, action, entity_type, entity_id, created_at, updated_at${chained ? sql`, seq, hash` : sql``})
    SELECT CASE WHEN k.actor_type IN ('user', 'api_key') THEN md5('actor' || ((i * 7919) % 500)::text)::uuid END, k.actor_type, k.action, k.entity_type,
           CASE WHEN k.entity_type IS NOT NULL THEN ((i * 104729) % 5000)::text END, at, at${chained ? sql`, ${after}::bigint + i, md5(i::text)` : sql``}
    FROM generate_series(1, ${rows}::bigint) i
    JOIN (VALUES ${kinds}) AS k(n, action, entity_type, actor_type) ON k.n = (i * 7) % ${KINDS.length}::int,
    LATERAL (SELECT now() - make_interval(days => ${days}::int) + make_interval(secs => (i::double precision / ${rows}) * ${days}::int * 86400) AS at) t
    ORDER BY i`.execute(db);
  if (hasHead) await sql`UPDATE ${head} SET seq = ${after + rows}::bigint, hash = md5(${String(rows)})`.execute(db);
  await sql`VACUUM (ANALYZE) ${table}`.execute(db);
  return { slug, schema, email, rows, days, seconds: (performance.now() - t) / 1000 };
}

/** The query string of a measured request: a fixed 30-day range ending at `now`. */
export function analyticsQueryString(groupBy: GroupBy, now: Date): string {
  const from = new Date(now.getTime() - ANALYTICS_RANGE_DAYS * 86_400_000);
  return new URLSearchParams({ group_by: groupBy, from: from.toISOString(), to: now.toISOString() }).toString();
}

/**
 * The plan and run time of the statement behind a request, from EXPLAIN (ANALYZE, BUFFERS):
 * every node that read a table or an index, and PostgreSQL's own execution time.
 */
export async function explainAnalytics(db: Db, schema: string, groupBy: GroupBy, now: Date) {
  const query = Object.fromEntries(new URLSearchParams(analyticsQueryString(groupBy, now))) as { group_by: GroupBy; from: string; to: string };
  const statement = analyticsStatement(tenantDb(db, schema), resolveAnalyticsQuery(query, now));
  // The sign-ins of the measured turns wrote audit rows since the fill's vacuum: without a fresh
  // visibility map the planner may prefer a bitmap heap scan to the index-only scan it serves from.
  await sql`VACUUM (ANALYZE) ${sql.id(schema, 'audit_logs')}`.execute(db);
  const { rows } = await sql<ExplainRow>`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement}`.execute(db);
  return planScans(rows[0]!);
}

export interface AnalyticsScenarioOptions {
  readonly db: Db;
  readonly schemas: SchemaManager;
  readonly passwordHash: string;
  readonly rows: number;
  readonly days: number;
  readonly rounds: number;
  /** The service's and the floor's base URLs. */
  readonly base: string;
  readonly floorBase: string;
  /** An access token of a tenant's user, by signing in through the service. */
  readonly token: (slug: string, email: string) => Promise<string>;
  /** One measured turn of GET `url` (bench/run.ts `load`). */
  readonly measure: (name: string, url: string, headers?: Record<string, string>) => Promise<Turn>;
  /** Waits for the fill's checkpoint and autovacuum, as the other seeded scenarios do. */
  readonly settle: () => Promise<unknown>;
  readonly log: (message: string) => void;
}

const GOAL_MS = 200;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The audit_analytics scenario: the tenant seeded, then `rounds` rounds of four turns (the
 * floor and the service by action, then by day), each keeping the medians of its turns; then
 * the plan of each statement, run once more under EXPLAIN ANALYZE.
 */
export async function auditAnalyticsScenario(o: AnalyticsScenarioOptions) {
  const tenant = await seedAuditTenant(o.db, o.schemas, { slug: 'auditlog', rows: o.rows, days: o.days, passwordHash: o.passwordHash });
  o.log(`audit tenant: ${tenant.rows} audit rows over ${tenant.days} days seeded in ${tenant.seconds.toFixed(1)} s`);
  await o.settle();
  const headers = { authorization: `Bearer ${await o.token(tenant.slug, tenant.email)}` };
  const now = new Date();
  const groups = ['action', 'day'] as const;
  const turns = Object.fromEntries(groups.flatMap((g) => [[g, [] as Turn[]], [`floor_${g}`, [] as Turn[]]])) as Record<string, Turn[]>;
  for (let round = 0; round < o.rounds; round++) {
    for (const g of groups) {
      const query = analyticsQueryString(g, now);
      turns[`floor_${g}`]!.push(await o.measure(`floor_audit_analytics_${g}`, `${o.floorBase}/floor/${tenant.schema}/audit-analytics?${query}`));
      turns[g]!.push(await o.measure(`audit_analytics_${g}`, `${o.base}/api/v1/tenants/${tenant.slug}/audit-logs/analytics?${query}`, headers));
    }
  }
  const figures = (runs: Turn[]) => ({ p50_ms: median(runs.map((r) => r.p50_ms)), p99_ms: median(runs.map((r) => r.p99_ms)), rps: median(runs.map((r) => r.rps)), p50_rounds: runs.map((r) => r.p50_ms) });
  const byGroup = async (g: (typeof groups)[number]) => {
    const service = figures(turns[g]!);
    const floor = figures(turns[`floor_${g}`]!);
    return { ...service, floor, ratio_to_floor: Number((service.rps / Math.max(1, floor.rps)).toFixed(3)), plan: await explainAnalytics(o.db, tenant.schema, g, now) };
  };
  return {
    tenant: { slug: tenant.slug, rows: tenant.rows, days: tenant.days, seed_s: Number(tenant.seconds.toFixed(1)), rounds: o.rounds },
    range_days: ANALYTICS_RANGE_DAYS,
    goal_ms: GOAL_MS,
    by_action: await byGroup('action'),
    by_day: await byGroup('day'),
    measured: `GET audit-logs/analytics?group_by=action|day over the last ${ANALYTICS_RANGE_DAYS} days (a fixed range) with one connection, each turn after a turn of floor_audit_analytics (the same statement straight through pg); the medians of the turns' p50 and p99; plan: EXPLAIN ANALYZE of the statement afterwards`,
  };
}
