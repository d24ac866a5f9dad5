import { sql, type Kysely, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import type { TenantDatabase } from '../db/types.js';
import type { GroupBy } from './analytics.js';

/*
 * The statements of audit analytics (AuditAnalyticsService in analytics.ts runs them): each
 * reads audit_logs through an index only (migration 10, docs/AUDIT.md).
 */

/** A request checked and completed with its defaults. */
export interface ResolvedQuery {
  group_by: GroupBy | 'entity_id';
  from: Date;
  to: Date;
  timezone: string;
  limit: number;
  action?: string;
  actor_user_id?: string;
  entity_type?: string;
}

type AuditRows = SelectQueryBuilder<TenantDatabase, 'audit_logs', object>;

type Bound = Date | RawBuilder<Date>;

/**
 * The rows a request counts: its filters, and its range or the part of it given (every column
 * read is in audit_logs_created_at_cover_idx).
 */
function rowsOf(db: Kysely<TenantDatabase>, r: ResolvedQuery, range: { from: Bound; to: Bound } = r): AuditRows {
  let q = db.selectFrom('audit_logs').where('created_at', '>=', range.from).where('created_at', '<', range.to);
  if (r.action !== undefined) q = q.where('action', '=', r.action);
  if (r.actor_user_id !== undefined) q = q.where('actor_user_id', '=', r.actor_user_id);
  if (r.entity_type !== undefined) q = q.where('entity_type', '=', r.entity_type);
  return q;
}

/**
 * Grouping is done twice: first by the columns as stored (cheap to hash, and few groups), then
 * by the key built from them. For `actor` (the acting user, else the actor type: `system`,
 * `anonymous`) that took 0.6 of the time at a million rows of building the text for each row.
 */
const STORED: Record<'action' | 'actor' | 'entity_type' | 'entity_id', readonly ('action' | 'actor_user_id' | 'actor_type' | 'entity_type' | 'entity_id')[]> = {
  action: ['action'],
  actor: ['actor_user_id', 'actor_type'],
  entity_type: ['entity_type'],
  entity_id: ['entity_id'],
};

function keyOf(groupBy: keyof typeof STORED): RawBuilder<string | null> {
  return groupBy === 'actor' ? sql<string>`coalesce(actor_user_id::text, actor_type)` : (sql.ref(groupBy) as RawBuilder<string | null>);
}

/** The start of the bucket holding `value`, in the request's time zone. */
function bucketOf(unit: 'day' | 'hour', value: RawBuilder<unknown>, timezone: string): RawBuilder<Date> {
  return sql<Date>`date_trunc(${sql.lit(unit)}, ${value}, ${timezone}::text)`;
}

/**
 * Every bucket from the one holding `from` up to `to`, in time order: its start (`key`) and
 * the next one's (`next`). Hours step in absolute time (a day with a clock change has 23 or
 * 25); days step in local time, from midnight to midnight of the zone.
 */
function bucketsOf(unit: 'day' | 'hour', r: ResolvedQuery): RawBuilder<{ key: Date; next: Date }> {
  const [from, to, tz] = [sql`${r.from}::timestamptz`, sql`${r.to}::timestamptz`, sql`${r.timezone}::text`];
  if (unit === 'hour') return sql`SELECT s AS key, s + interval '1 hour' AS next FROM generate_series(date_trunc('hour', ${from}, ${tz}), ${to}, interval '1 hour') s WHERE s < ${to}`;
  return sql`SELECT s AT TIME ZONE ${tz} AS key, (s + interval '1 day') AT TIME ZONE ${tz} AS next
    FROM generate_series(date_trunc('day', ${from}, ${tz}) AT TIME ZONE ${tz}, ${to} AT TIME ZONE ${tz}, interval '1 day') s WHERE s AT TIME ZONE ${tz} < ${to}`;
}

/**
 * The statement behind a request (exported for EXPLAIN in tests and the benchmark's floor).
 * Non-time groupings: `{key, count, total}` rows, largest first, `total` counting every row of
 * the range. Time groupings: `{key, count}` for every bucket of the range in time order, zero
 * where nothing happened.
 */
export function analyticsStatement(db: Kysely<TenantDatabase>, r: ResolvedQuery) {
  if (r.group_by === 'day' || r.group_by === 'hour') {
    // Each bucket counts its own slice of the index (one descent, then entries only): no row is
    // hashed or converted to the zone. At a million rows, 0.55 of the time of grouping the rows.
    const slice = { from: sql<Date>`greatest(b.key, ${r.from}::timestamptz)`, to: sql<Date>`least(b.next, ${r.to}::timestamptz)` };
    return db
      .selectFrom(sql<{ key: Date; next: Date }>`(${bucketsOf(r.group_by, r)})`.as('b'))
      .select([sql<Date>`b.key`.as('key'), rowsOf(db, r, slice).select(sql<string>`count(*)`.as('count')).as('count'), sql<string | null>`NULL::numeric`.as('total')])
      .orderBy(sql`b.key`);
  }
  if (r.group_by === 'action' && r.actor_user_id === undefined && r.entity_type === undefined) return actionCounts(db, r);
  const key = keyOf(r.group_by);
  const stored = STORED[r.group_by];
  return db
    .with('stored', () => rowsOf(db, r).select([...stored, sql<string>`count(*)`.as('count')]).groupBy([...stored]))
    .selectFrom('stored')
    .select([key.as('key'), sql<string>`sum(count)`.as('count'), sql<string | null>`sum(sum(count)) OVER ()`.as('total')])
    .groupBy(key)
    .orderBy(sql`sum(count)`, 'desc')
    .orderBy(key)
    .limit(r.limit);
}

/**
 * Counts by action without hashing a row: the tenant's actions are walked in the index on
 * (action, created_at), one descent each, and each counts its own entries in the range there
 * (index-only). At a million rows this took 0.6 of the time of the grouped scan; it serves
 * group_by=action unless actor or entity type filter the rows (columns that index lacks).
 */
function actionCounts(db: Kysely<TenantDatabase>, r: ResolvedQuery) {
  return db
    .withRecursive('actions(action)', (qc) =>
      qc
        .selectFrom('audit_logs')
        .select((eb) => eb.fn.min<string | null>('action').as('action'))
        .unionAll((eb) =>
          eb
            .selectFrom('actions')
            .select((e) => e.selectFrom('audit_logs as next').select((n) => n.fn.min<string | null>('next.action').as('action')).whereRef('next.action', '>', 'actions.action').as('action'))
            .where('actions.action', 'is not', null),
        ),
    )
    // Materialized: inlined, each count would run once per reference.
    .with((cte) => cte('counted').materialized(), (qc) =>
      qc
        .selectFrom('actions')
        .select((eb) => [
          'actions.action as key',
          eb.selectFrom('audit_logs as row').select(sql<string>`count(*)`.as('count')).whereRef('row.action', '=', 'actions.action').where('row.created_at', '>=', r.from).where('row.created_at', '<', r.to).as('count'),
        ])
        .where('actions.action', r.action === undefined ? 'is not' : '=', r.action ?? null),
    )
    .selectFrom('counted')
    .select(['key', sql<string>`count`.as('count'), sql<string | null>`sum(count) OVER ()`.as('total')])
    .where(sql<boolean>`count > 0`)
    .orderBy(sql`count`, 'desc')
    .orderBy('key')
    .limit(r.limit);
}

/** Pairs of hour and actor with at least `minCount` of the request's rows: `{hour, actor, count}`. */
export function denialSpikeStatement(db: Kysely<TenantDatabase>, r: ResolvedQuery, minCount: number) {
  const [bucket, actor] = [bucketOf('hour', sql.ref('created_at'), r.timezone), keyOf('actor')];
  return rowsOf(db, r)
    .select([bucket.as('hour'), actor.as('actor'), sql<string>`count(*)`.as('count')])
    .groupBy([sql`1`, sql`2`])
    .having(sql`count(*)`, '>=', minCount);
}
