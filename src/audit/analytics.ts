import type { Kysely } from 'kysely';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError, FieldChecks, text } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';
import { analyticsStatement, denialSpikeStatement, type ResolvedQuery } from './analytics-queries.js';

export { analyticsStatement, type ResolvedQuery } from './analytics-queries.js';

/** What `GET audit-logs/analytics` counts by. */
export const GROUP_BYS = ['action', 'actor', 'entity_type', 'day', 'hour'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];

/** Bounds of an analytics request. */
export const ANALYTICS_LIMITS = {
  /** `from` when only `to` (or nothing) is given: this many days before `to`. */
  defaultRangeDays: 30,
  /** Most buckets a day or hour grouping answers (a longer range is refused). */
  maxBuckets: 10_000,
  defaultLimit: 100,
  maxLimit: 1000,
} as const;

/** The anomaly rules of the security view (docs/AUDIT.md, "Anomalies"). */
export const ANOMALY_RULES = {
  /** An hour with at least `minCount` failed logins and at least `factor` times the baseline. */
  failedLoginSpike: { minCount: 20, factor: 5, baselineHours: 7 * 24, minBaseline: 1 },
  /** One actor refused at least `minCount` times in one hour. */
  denialSpike: { minCount: 20 },
} as const;

/** The audit actions the security view reads (written by auth/service.ts and auth/tenant-hook.ts). */
export const SECURITY_ACTIONS = { failedLogin: 'auth.login_failed', lockout: 'auth.lockout', denial: 'auth.permission_denied' } as const;

export interface AnalyticsQuery {
  group_by: GroupBy;
  from?: string;
  to?: string;
  action?: string;
  actor_user_id?: string;
  entity_type?: string;
  timezone?: string;
  limit?: number;
}

export interface SecurityQuery {
  from?: string;
  to?: string;
  timezone?: string;
  limit?: number;
}

export interface Bucket {
  /** The group's value; for day and hour the bucket's start as an ISO timestamp; null for rows without an entity type. */
  key: string | null;
  count: number;
}

export interface AnalyticsResult {
  group_by: GroupBy;
  from: Date;
  to: Date;
  total: number;
  buckets: Bucket[];
}

export interface Anomaly {
  rule: 'failed_login_spike' | 'denial_spike';
  hour: string;
  count: number;
  baseline?: number;
  actor?: string;
}

export interface SecurityView {
  from: Date;
  to: Date;
  timezone: string;
  failed_logins: { total: number; buckets: Bucket[] };
  lockouts: { total: number; by_user: { user_id: string; count: number }[] };
  permission_denials: { total: number; by_actor: { actor: string; count: number }[] };
  anomalies: Anomaly[];
}

const HOUR_MS = 3_600_000;
const UNIT_MS = { hour: HOUR_MS, day: 24 * HOUR_MS } as const;
/** Region/City names (and UTC, Etc/GMT+5): never a bare offset, which PostgreSQL reads with POSIX's inverted sign. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/** `timezone`: an IANA time zone name, UTC when absent. */
export function timeZoneOf(value: string | undefined): string {
  if (value === undefined) return 'UTC';
  const known = ZONE_NAME.test(value) && (() => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: value });
      return true;
    } catch {
      return false;
    }
  })();
  if (!known) throw DomainError.invalid('timezone', text('reason.time_zone_example'));
  return value;
}

function dateOf(field: 'from' | 'to', value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw DomainError.invalid(field, text('reason.date_time'));
  return date;
}

/** The time range: `to` defaults to now, `from` to 30 days before `to`; `from` must come first. */
export function rangeOf(q: { from?: string; to?: string }, now: Date): { from: Date; to: Date } {
  const checks = new FieldChecks();
  const to = q.to === undefined ? now : checks.check(() => dateOf('to', q.to!));
  const from = q.from === undefined ? to && new Date(to.getTime() - ANALYTICS_LIMITS.defaultRangeDays * 24 * HOUR_MS) : checks.check(() => dateOf('from', q.from!));
  checks.done();
  if (from! >= to!) throw DomainError.invalid('from', text('reason.from_before_to'));
  return { from: from!, to: to! };
}

/** A day or hour grouping answers one bucket per unit of the range: at most ANALYTICS_LIMITS.maxBuckets. */
export function checkBucketCount(unit: 'day' | 'hour', range: { from: Date; to: Date }): void {
  const buckets = Math.ceil((range.to.getTime() - range.from.getTime()) / UNIT_MS[unit]);
  if (buckets > ANALYTICS_LIMITS.maxBuckets) throw DomainError.invalid('from', text('reason.too_many_buckets', { buckets, unit, max: ANALYTICS_LIMITS.maxBuckets }));
}

function limitOf(value: number | undefined): number {
  const limit = value ?? ANALYTICS_LIMITS.defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > ANALYTICS_LIMITS.maxLimit) throw DomainError.invalid('limit', text('reason.integer_between', { min: 1, max: ANALYTICS_LIMITS.maxLimit }));
  return limit;
}

/** Checks an analytics request (every failing field at once) and fills in its defaults. */
export function resolveAnalyticsQuery(q: AnalyticsQuery, now: Date): ResolvedQuery {
  const checks = new FieldChecks();
  if (!GROUP_BYS.includes(q.group_by)) checks.fail('group_by', text('reason.one_of', { values: GROUP_BYS.join(', ') }));
  const range = checks.check(() => rangeOf(q, now));
  const timezone = checks.check(() => timeZoneOf(q.timezone));
  const limit = checks.check(() => limitOf(q.limit));
  checks.done();
  if (q.group_by === 'day' || q.group_by === 'hour') checkBucketCount(q.group_by, range!);
  return { group_by: q.group_by, ...range!, timezone: timezone!, limit: limit!, action: q.action, actor_user_id: q.actor_user_id, entity_type: q.entity_type };
}

/** Runs a statement; a zone PostgreSQL does not know (its list and the runtime's may differ) is the caller's 400. */
async function run<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if ((error as { code?: string }).code === '22023' && /time zone/.test((error as Error).message)) throw DomainError.invalid('timezone', text('reason.time_zone_database'));
    throw error;
  }
}

const keyText = (key: Date | string | null) => (key instanceof Date ? key.toISOString() : key);

/** Counts of the tenant's audit trail over a time range, and the security views built on them. */
export class AuditAnalyticsService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** `GET audit-logs/analytics`: counts grouped by action, actor, entity type, day or hour. */
  async analytics(tenant: TenantContext, q: AnalyticsQuery): Promise<AnalyticsResult> {
    const r = resolveAnalyticsQuery(q, this.clock());
    const { buckets, total } = await this.grouped(tenant, r);
    return { group_by: q.group_by, from: r.from, to: r.to, total, buckets };
  }

  private async grouped(tenant: TenantContext, r: ResolvedQuery): Promise<{ buckets: Bucket[]; total: number }> {
    const rows = await run<{ key: Date | string | null; count: string | null; total: string | null }[]>(analyticsStatement(tenantDb(this.db, tenant.schema), r).execute());
    const buckets = rows.map((row) => ({ key: keyText(row.key), count: Number(row.count) }));
    const total = r.group_by === 'day' || r.group_by === 'hour' ? buckets.reduce((sum, b) => sum + b.count, 0) : Number(rows[0]?.total ?? 0);
    return { buckets, total };
  }

  /**
   * `GET audit-logs/analytics/security`: failed logins per hour, lockouts by user, permission
   * denials by actor, and the anomalies of ANOMALY_RULES over the range.
   */
  async security(tenant: TenantContext, q: SecurityQuery): Promise<SecurityView> {
    const checks = new FieldChecks();
    const range = checks.check(() => rangeOf(q, this.clock()));
    const timezone = checks.check(() => timeZoneOf(q.timezone));
    const limit = checks.check(() => limitOf(q.limit));
    checks.done();
    checkBucketCount('hour', range!);
    const base = { ...range!, timezone: timezone!, limit: limit! };
    const baselineFrom = new Date(base.from.getTime() - (ANOMALY_RULES.failedLoginSpike.baselineHours + 1) * HOUR_MS);
    const [failed, earlier, lockouts, denials, denialSpikes] = await Promise.all([
      this.grouped(tenant, { ...base, group_by: 'hour', action: SECURITY_ACTIONS.failedLogin }),
      this.grouped(tenant, { ...base, from: baselineFrom, to: base.from, group_by: 'hour', action: SECURITY_ACTIONS.failedLogin }),
      this.grouped(tenant, { ...base, group_by: 'entity_id', action: SECURITY_ACTIONS.lockout }),
      this.grouped(tenant, { ...base, group_by: 'actor', action: SECURITY_ACTIONS.denial }),
      this.denialSpikes(tenant, base),
    ]);
    return {
      ...range!,
      timezone: base.timezone,
      failed_logins: failed,
      lockouts: { total: lockouts.total, by_user: lockouts.buckets.map((b) => ({ user_id: b.key ?? '', count: b.count })) },
      permission_denials: { total: denials.total, by_actor: denials.buckets.map((b) => ({ actor: b.key ?? '', count: b.count })) },
      anomalies: [...failedLoginSpikes(failed.buckets, new Map(earlier.buckets.map((b) => [b.key!, b.count]))), ...denialSpikes].sort((a, b) => a.hour.localeCompare(b.hour) || a.rule.localeCompare(b.rule)),
    };
  }

  private async denialSpikes(tenant: TenantContext, r: Omit<ResolvedQuery, 'group_by'>): Promise<Anomaly[]> {
    const rows = await run(denialSpikeStatement(tenantDb(this.db, tenant.schema), { ...r, group_by: 'actor', action: SECURITY_ACTIONS.denial }, ANOMALY_RULES.denialSpike.minCount).execute());
    return rows.map((row) => ({ rule: 'denial_spike', hour: row.hour.toISOString(), count: Number(row.count), actor: row.actor ?? '' }));
  }
}

/**
 * The failed_login_spike rule: an hour of the range with at least minCount failed logins and
 * at least `factor` times the baseline, the average failed logins per hour over the 168 hours
 * before it (whole hours, `earlier` holding those before the range), taken as at least 1.
 */
export function failedLoginSpikes(hours: readonly Bucket[], earlier: ReadonlyMap<string, number>): Anomaly[] {
  const rule = ANOMALY_RULES.failedLoginSpike;
  // Full counts of every hour (the range's first may have begun before it), oldest first.
  const counts = new Map(earlier);
  for (const b of hours) counts.set(b.key!, (counts.get(b.key!) ?? 0) + b.count);
  const timeline = [...counts].map(([key, count]) => ({ at: Date.parse(key), count })).sort((a, b) => a.at - b.at);
  const candidates = new Map(hours.filter((b) => b.count >= rule.minCount).map((b) => [b.key!, b.count]));
  const anomalies: Anomaly[] = [];
  let [start, windowSum] = [0, 0];
  for (let i = 0, end = 0; i < timeline.length; i++) {
    const hour = timeline[i]!;
    // The window holds the hours in [hour - 168 h, hour).
    for (; end < i; end++) windowSum += timeline[end]!.count;
    for (; timeline[start]!.at < hour.at - rule.baselineHours * HOUR_MS; start++) windowSum -= timeline[start]!.count;
    const key = new Date(hour.at).toISOString();
    const count = candidates.get(key);
    if (count === undefined) continue;
    const baseline = Math.max(rule.minBaseline, windowSum / rule.baselineHours);
    if (count >= rule.factor * baseline) anomalies.push({ rule: 'failed_login_spike', hour: key, count, baseline: Math.round(baseline * 100) / 100 });
  }
  return anomalies;
}
