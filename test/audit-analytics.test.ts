import { describe, expect, it } from 'vitest';
import { analyticsStatement, ANOMALY_RULES, AuditAnalyticsService, failedLoginSpikes, resolveAnalyticsQuery, type AnalyticsQuery } from '../src/audit/analytics.js';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { caller } from './support/records.js';
import { PASSWORD } from './support/tenants.js';

/*
 * SPEC §14 audit analytics: counts of a known sequence of actions, made through the API in two
 * tenants, equal the counts this file computes itself from the trail (GET audit-logs) over the
 * same range; the security view and its anomaly rules; the plan reads an index only.
 */

const t = useTenants(['aa', 'ab']);
const call = (token: string, method: 'GET' | 'POST', url: string, payload?: unknown) => caller(t.app)(token, method, url, payload);
const HOUR = 3_600_000;

interface TrailRow {
  created_at: string;
  action: string;
  actor_user_id: string | null;
  actor_type: string;
  entity_type: string | null;
}

/** Every audit row of a tenant in [from, to), read page by page through the list route. */
async function trail(slug: string, range: { from: Date; to: Date }): Promise<TrailRow[]> {
  const rows: TrailRow[] = [];
  for (let page = 1; ; page++) {
    const res = await call(t.tokens[slug as 'aa'], 'GET', `${slug}/audit-logs?page_size=100&page=${page}&from=${range.from.toISOString()}&to=${range.to.toISOString()}`);
    expect(res.statusCode).toBe(200);
    rows.push(...res.json().items);
    if (rows.length >= res.json().total) return rows;
  }
}

function analytics(slug: string, query: Record<string, string | number>, token = t.tokens[slug as 'aa']) {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
  return call(token, 'GET', `${slug}/audit-logs/analytics?${qs}`);
}

const countBy = <T>(items: readonly T[], key: (item: T) => string | null) => {
  const counts = new Map<string | null, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
};

/** The start of the bucket holding `at`, in a zone of fixed offset (minutes east of UTC). */
const bucketStart = (at: number, unitMs: number, offsetMinutes = 0) => Math.floor((at + offsetMinutes * 60_000) / unitMs) * unitMs - offsetMinutes * 60_000;

/** Every bucket of [from, to) in time order, with the rows' counts and zero elsewhere. */
function expectedSeries(rows: readonly TrailRow[], range: { from: Date; to: Date }, unitMs: number, offsetMinutes = 0) {
  const counts = countBy(rows, (r) => new Date(bucketStart(Date.parse(r.created_at), unitMs, offsetMinutes)).toISOString());
  const buckets = [];
  for (let at = bucketStart(range.from.getTime(), unitMs, offsetMinutes); at < range.to.getTime(); at += unitMs) {
    const key = new Date(at).toISOString();
    buckets.push({ key, count: counts.get(key) ?? 0 });
  }
  return buckets;
}

const actorOf = (r: TrailRow) => r.actor_user_id ?? r.actor_type;

/** Checks one non-time grouping against the trail: the same groups and counts, largest first, and the total. */
async function expectGrouping(slug: string, range: { from: Date; to: Date }, rows: readonly TrailRow[], groupBy: 'action' | 'actor' | 'entity_type', key: (r: TrailRow) => string | null, filters: Record<string, string> = {}) {
  const res = await analytics(slug, { group_by: groupBy, from: range.from.toISOString(), to: range.to.toISOString(), ...filters });
  expect(res.statusCode, res.body).toBe(200);
  const body = res.json();
  expect(body).toMatchObject({ group_by: groupBy, from: range.from.toISOString(), to: range.to.toISOString(), total: rows.length });
  expect(new Map(body.buckets.map((b: { key: string; count: number }) => [b.key, b.count]))).toEqual(countBy(rows, key));
  const counts = body.buckets.map((b: { count: number }) => b.count);
  expect(counts).toEqual([...counts].sort((a, b) => b - a));
  return body;
}

/** What a tenant's sequence did, and when. */
interface Done {
  range: { from: Date; to: Date };
  lockedUser?: string;
  viewer?: string;
}

/**
 * The known sequence: users created, failed logins (one user past the lockout threshold, the
 * rest for unknown addresses), and a viewer refused the audit routes `denials` times.
 */
async function actions(slug: 'aa' | 'ab', plan: { users: number; badPasswords: number; unknownLogins: number; denials: number }): Promise<Done> {
  const from = new Date();
  const token = t.tokens[slug];
  const made: string[] = [];
  for (let i = 0; i < plan.users; i++) {
    const res = await call(token, 'POST', `${slug}/users`, { email: `u${i}@${slug}.example`, password: PASSWORD, roles: [i === 0 ? 'viewer' : 'user'] });
    expect(res.statusCode, res.body).toBe(201);
    made.push(res.json().id);
  }
  const login = (email: string, password: string) => t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/login`, payload: { email, password } });
  for (let i = 0; i < plan.badPasswords; i++) expect((await login(`u1@${slug}.example`, 'not the password')).statusCode).toBe(401);
  for (let i = 0; i < plan.unknownLogins; i++) expect((await login(`nobody${i}@${slug}.example`, 'whatever it is')).statusCode).toBe(401);
  let viewer: string | undefined;
  if (plan.denials > 0) {
    const signedIn = await login(`u0@${slug}.example`, PASSWORD);
    expect(signedIn.statusCode).toBe(200);
    viewer = made[0];
    const routes = ['audit-logs', 'audit-logs/analytics?group_by=action', 'audit-logs/analytics/security'];
    for (let i = 0; i < plan.denials; i++) expect((await call(signedIn.json().access_token, 'GET', `${slug}/${routes[i % routes.length]}`)).statusCode).toBe(403);
  }
  return { range: { from, to: new Date(Date.now() + 1000) }, lockedUser: made[1], viewer };
}

describe('GET audit-logs/analytics', () => {
  let done: Record<'aa' | 'ab', Done>;
  let abBefore: unknown[];

  it('counts a known sequence of actions as the trail says, in each tenant', async () => {
    const ab = await actions('ab', { users: 2, badPasswords: 2, unknownLogins: 1, denials: 0 });
    abBefore = await Promise.all((['action', 'actor', 'entity_type', 'hour'] as const).map(async (g) => (await analytics('ab', { group_by: g, from: ab.range.from.toISOString(), to: ab.range.to.toISOString() })).json()));
    // Past the default lockout threshold (10 in a row): a lockout, then failures while locked.
    const aa = await actions('aa', { users: 3, badPasswords: 12, unknownLogins: 30, denials: 40 });
    done = { aa, ab };

    for (const slug of ['aa', 'ab'] as const) {
      const { range } = done[slug];
      const rows = await trail(slug, range);
      const byAction = await expectGrouping(slug, range, rows, 'action', (r) => r.action);
      await expectGrouping(slug, range, rows, 'actor', actorOf);
      await expectGrouping(slug, range, rows, 'entity_type', (r) => r.entity_type);
      // The trail holds what the sequence did, no more and no less of these.
      const counted = Object.fromEntries(byAction.buckets.map((b: { key: string; count: number }) => [b.key, b.count]));
      const expected = slug === 'aa' ? { 'users.create': 3, 'auth.login_failed': 42, 'auth.lockout': 1, 'auth.permission_denied': 40, 'auth.login': 1 } : { 'users.create': 2, 'auth.login_failed': 3 };
      expect(counted).toMatchObject(expected);
      if (slug === 'ab') expect(counted['auth.lockout']).toBeUndefined();
    }
  });

  it('leaves the other tenant untouched', async () => {
    const { range } = done.ab;
    const after = await Promise.all((['action', 'actor', 'entity_type', 'hour'] as const).map(async (g) => (await analytics('ab', { group_by: g, from: range.from.toISOString(), to: range.to.toISOString() })).json()));
    expect(after).toEqual(abBefore);
  });

  it('filters by action, actor and entity type, and keeps the total when it lists fewer groups', async () => {
    const { range, viewer } = done.aa;
    const rows = await trail('aa', range);
    await expectGrouping('aa', range, rows.filter((r) => r.action === 'auth.login_failed'), 'actor', actorOf, { action: 'auth.login_failed' });
    await expectGrouping('aa', range, rows.filter((r) => r.actor_user_id === viewer), 'action', (r) => r.action, { actor_user_id: viewer! });
    await expectGrouping('aa', range, rows.filter((r) => r.entity_type === 'users'), 'action', (r) => r.action, { entity_type: 'users' });
    // One action, or one the tenant never wrote.
    await expectGrouping('aa', range, rows.filter((r) => r.action === 'auth.lockout'), 'action', (r) => r.action, { action: 'auth.lockout' });
    await expectGrouping('aa', range, [], 'action', (r) => r.action, { action: 'no.such_action' });
    const top = await analytics('aa', { group_by: 'action', from: range.from.toISOString(), to: range.to.toISOString(), limit: 2 });
    expect(top.json().buckets.map((b: { key: string }) => b.key)).toEqual(['auth.login_failed', 'auth.permission_denied']);
    expect(top.json().total).toBe(rows.length);
  });

  it('answers every hour and day of the range in time order, zeros included, in the zone asked for', async () => {
    const { range } = done.aa;
    const rows = await trail('aa', range);
    // Hours of the last three days (most of them empty), in UTC and in India (UTC+05:30).
    const wide = { from: new Date(range.from.getTime() - 3 * 24 * HOUR), to: range.to };
    const wideRows = await trail('aa', wide);
    for (const [timezone, offset] of [['UTC', 0], ['Asia/Kolkata', 330]] as const) {
      for (const [groupBy, unit] of [['hour', HOUR], ['day', 24 * HOUR]] as const) {
        const res = await analytics('aa', { group_by: groupBy, from: wide.from.toISOString(), to: wide.to.toISOString(), timezone });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().buckets, `${groupBy} ${timezone}`).toEqual(expectedSeries(wideRows, wide, unit, offset));
        expect(res.json().total).toBe(wideRows.length);
      }
    }
    const hours = await analytics('aa', { group_by: 'hour', from: range.from.toISOString(), to: range.to.toISOString(), action: 'auth.login_failed' });
    expect(hours.json().buckets).toEqual(expectedSeries(rows.filter((r) => r.action === 'auth.login_failed'), range, HOUR));
  });

  it('steps days from local midnight and hours in absolute time across clock changes', async () => {
    // New York, spring 2024: the day of the change has 23 hours.
    const days = await analytics('aa', { group_by: 'day', from: '2024-03-09T05:00:00Z', to: '2024-03-12T04:00:00Z', timezone: 'America/New_York' });
    expect(days.json()).toEqual({ group_by: 'day', from: '2024-03-09T05:00:00.000Z', to: '2024-03-12T04:00:00.000Z', total: 0, buckets: ['2024-03-09T05:00:00.000Z', '2024-03-10T05:00:00.000Z', '2024-03-11T04:00:00.000Z'].map((key) => ({ key, count: 0 })) });
    // Autumn 2024: 01:00 comes twice, and both are hours of their own.
    const hours = await analytics('aa', { group_by: 'hour', from: '2024-11-03T04:00:00Z', to: '2024-11-03T08:00:00Z', timezone: 'America/New_York' });
    expect(hours.json().buckets.map((b: { key: string }) => b.key)).toEqual(['04', '05', '06', '07'].map((h) => `2024-11-03T${h}:00:00.000Z`));
    // A zone half an hour off UTC: the bucket holding `from` starts before it.
    const india = await analytics('aa', { group_by: 'hour', from: '2024-01-01T00:00:00Z', to: '2024-01-01T03:00:00Z', timezone: 'Asia/Kolkata' });
    expect(india.json().buckets.map((b: { key: string }) => b.key)).toEqual(['2023-12-31T23:30:00.000Z', '2024-01-01T00:30:00.000Z', '2024-01-01T01:30:00.000Z', '2024-01-01T02:30:00.000Z']);
    // 10,000 hours is the most a range may hold.
    const most = await analytics('aa', { group_by: 'hour', from: '2020-01-01T00:00:00Z', to: new Date(Date.parse('2020-01-01T00:00:00Z') + 10_000 * HOUR).toISOString() });
    expect(most.json().buckets).toHaveLength(10_000);
  });

  it('defaults to the 30 days up to now', async () => {
    const before = Date.now();
    const res = await analytics('aa', { group_by: 'action' });
    const { from, to } = res.json();
    expect(Date.parse(to)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(to)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(to) - Date.parse(from)).toBe(30 * 24 * HOUR);
    // The service's clock decides "now".
    const now = new Date('2030-06-01T12:00:00Z');
    const fixed = new AuditAnalyticsService(t.db.database.db, () => now);
    const tenant = await t.services.directory.resolve('aa');
    expect(await fixed.analytics(tenant, { group_by: 'day', to: '2030-06-01T12:00:00Z', from: '2030-05-31T12:00:00Z' })).toMatchObject({ total: 0, buckets: [{ count: 0 }, { count: 0 }] });
    expect(await fixed.analytics(tenant, { group_by: 'action' })).toEqual({ group_by: 'action', from: new Date('2030-05-02T12:00:00Z'), to: now, total: 0, buckets: [] });
  });

  it('refuses bad input with a 400 naming the field', async () => {
    const cases: [Record<string, string | number>, string][] = [
      [{}, 'querystring.group_by'],
      [{ group_by: 'week' }, 'querystring.group_by'],
      [{ group_by: 'action', from: 'yesterday' }, 'querystring.from'],
      [{ group_by: 'action', from: '2024-02-01T00:00:00Z', to: '2024-01-01T00:00:00Z' }, 'from'],
      [{ group_by: 'action', from: '2024-01-01T00:00:00Z', to: '2024-01-01T00:00:00Z' }, 'from'],
      [{ group_by: 'hour', from: '2020-01-01T00:00:00Z', to: new Date(Date.parse('2020-01-01T00:00:00Z') + 10_001 * HOUR).toISOString() }, 'from'],
      [{ group_by: 'day', timezone: 'Mars/Olympus_Mons' }, 'timezone'],
      [{ group_by: 'day', timezone: '+01:00' }, 'timezone'],
      [{ group_by: 'action', limit: 0 }, 'querystring.limit'],
      [{ group_by: 'action', limit: 1001 }, 'querystring.limit'],
      [{ group_by: 'action', actor_user_id: 'someone' }, 'querystring.actor_user_id'],
      [{ group_by: 'action', colour: 'blue' }, 'querystring.colour'],
    ];
    for (const [query, field] of cases) {
      const res = await analytics('aa', query);
      expect(res.statusCode, JSON.stringify(query)).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().errors.map((e: { field: string }) => e.field), JSON.stringify(query)).toContain(field);
    }
    const security = await call(t.tokens.aa, 'GET', 'aa/audit-logs/analytics/security?timezone=Nowhere/Special');
    expect(security.statusCode).toBe(400);
    expect(security.json().errors).toEqual([{ field: 'timezone', reason: expect.any(String) }]);
  });

  it('is documented in the OpenAPI document, the anomaly rules in the summary', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const analytics = doc.paths['/api/v1/tenants/{tenant_slug}/audit-logs/analytics'].get;
    expect(analytics.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['group_by', 'from', 'to', 'action', 'actor_user_id', 'entity_type', 'timezone', 'limit']));
    expect(Object.keys(analytics.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403']));
    const security = doc.paths['/api/v1/tenants/{tenant_slug}/audit-logs/analytics/security'].get;
    expect(security.summary).toContain(`at least ${ANOMALY_RULES.failedLoginSpike.minCount} failed logins and at least ${ANOMALY_RULES.failedLoginSpike.factor} times the average per hour of the 7 days before`);
    expect(security.summary).toContain(`refused at least ${ANOMALY_RULES.denialSpike.minCount} times in one hour`);
  });

  it('needs audit_logs.read and a caller', async () => {
    // The viewer's 403s are in the sequence above (and counted); here, no credentials at all.
    for (const path of ['audit-logs/analytics?group_by=action', 'audit-logs/analytics/security']) {
      expect((await t.app.inject({ method: 'GET', url: `/api/v1/tenants/aa/${path}` })).statusCode).toBe(401);
    }
  });

  it('reads an index only, never the whole table', async () => {
    const pool = t.db.database.pool;
    // VACUUM marks a page all-visible only once the commits of its rows are flushed, which the
    // test cluster (synchronous_commit off) leaves to its WAL writer: vacuum until it has.
    for (let tries = 0; ; tries++) {
      await pool.query('VACUUM (ANALYZE) tenant_aa.audit_logs');
      const { rows } = await pool.query<{ pages: number; visible: number }>("SELECT relpages AS pages, relallvisible AS visible FROM pg_class WHERE oid = 'tenant_aa.audit_logs'::regclass");
      if (rows[0]!.visible === rows[0]!.pages) break;
      expect(tries).toBeLessThan(50);
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = new Date();
    const queries: AnalyticsQuery[] = [{ group_by: 'action' }, { group_by: 'actor' }, { group_by: 'entity_type' }, { group_by: 'day', timezone: 'Europe/Paris' }, { group_by: 'hour' }, { group_by: 'hour', action: 'auth.login_failed' }];
    const analyticsIndexes = ['audit_logs_created_at_cover_idx', 'audit_logs_action_created_at_idx'];
    const client = await pool.connect();
    try {
      // A tenant this small would be read whole (cheaper than any index): the planner is told not to.
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      for (const query of queries) {
        const compiled = analyticsStatement(tenantDb(t.db.database.db, 'tenant_aa'), resolveAnalyticsQuery(query, now)).compile();
        const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${compiled.sql}`, [...compiled.parameters]);
        const nodes = scansOf(rows[0]['QUERY PLAN'][0].Plan);
        const reads = nodes.filter((n) => n.relation === 'audit_logs');
        expect(reads.length, JSON.stringify(query)).toBeGreaterThan(0);
        // Which of the two depends on the planner's estimates (docs/AUDIT.md shows them at a million rows).
        for (const read of reads) expect(analyticsIndexes, JSON.stringify(query)).toContain(read.index);
        for (const read of reads) expect(read.type, JSON.stringify(query)).toBe('Index Only Scan');
      }
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function scansOf(node: PlanNode): { type: string; relation?: string; index?: string }[] {
  return [{ type: node['Node Type'], relation: node['Relation Name'], index: node['Index Name'] }, ...(node.Plans ?? []).flatMap(scansOf)];
}

describe('GET audit-logs/analytics/security', () => {
  it('shows failed logins per hour, lockouts, denials by actor and the anomalies, as the trail says', async () => {
    const from = new Date(Date.now() - 2 * HOUR);
    const to = new Date(Date.now() + 1000);
    const res = await call(t.tokens.aa, 'GET', `aa/audit-logs/analytics/security?from=${from.toISOString()}&to=${to.toISOString()}`);
    expect(res.statusCode, res.body).toBe(200);
    const view = res.json();
    const rows = await trail('aa', { from, to });
    const failed = rows.filter((r) => r.action === 'auth.login_failed');
    const denied = rows.filter((r) => r.action === 'auth.permission_denied');
    expect(view.failed_logins).toEqual({ total: failed.length, buckets: expectedSeries(failed, { from, to }, HOUR) });
    expect(failed.length).toBe(42);
    const locked = await lockedUser();
    expect(view.lockouts).toEqual({ total: 1, by_user: [{ user_id: locked, count: 1 }] });
    expect(view.permission_denials).toEqual({ total: denied.length, by_actor: [{ actor: await viewerId(), count: 40 }] });
    expect(denied).toHaveLength(40);

    // The rules, computed here from the trail: this young tenant's baseline is the floor of 1.
    const expected = [];
    for (const [hour, count] of countBy(failed, (r) => new Date(bucketStart(Date.parse(r.created_at), HOUR)).toISOString())) {
      if (count >= ANOMALY_RULES.failedLoginSpike.minCount && count >= ANOMALY_RULES.failedLoginSpike.factor) expected.push({ rule: 'failed_login_spike', hour, count, baseline: 1 });
    }
    for (const [pair, count] of countBy(denied, (r) => `${new Date(bucketStart(Date.parse(r.created_at), HOUR)).toISOString()} ${actorOf(r)}`)) {
      const [hour, actor] = pair!.split(' ');
      if (count >= ANOMALY_RULES.denialSpike.minCount) expected.push({ rule: 'denial_spike', hour, count, actor });
    }
    // 42 failures and 40 denials, split across at most two hours: at least one hour of each holds 20.
    expect(expected.filter((a) => a.rule === 'failed_login_spike').length).toBeGreaterThan(0);
    expect(expected.filter((a) => a.rule === 'denial_spike').length).toBeGreaterThan(0);
    expect(view.anomalies).toEqual(expect.arrayContaining(expected));
    expect(view.anomalies).toHaveLength(expected.length);

    // The neighbour had three failed logins, no lockout, no denial, no anomaly.
    const ab = (await call(t.tokens.ab, 'GET', `ab/audit-logs/analytics/security?from=${from.toISOString()}&to=${to.toISOString()}`)).json();
    expect(ab).toMatchObject({ failed_logins: { total: 3 }, lockouts: { total: 0, by_user: [] }, permission_denials: { total: 0, by_actor: [] }, anomalies: [] });
  });

  async function lockedUser() {
    return (await tenantDb(t.db.database.db, 'tenant_aa').selectFrom('users').select('id').where('email', '=', 'u1@aa.example').executeTakeFirstOrThrow()).id;
  }
  async function viewerId() {
    return (await tenantDb(t.db.database.db, 'tenant_aa').selectFrom('users').select('id').where('email', '=', 'u0@aa.example').executeTakeFirstOrThrow()).id;
  }
});

describe('the failed_login_spike rule', () => {
  const { minCount, factor, baselineHours } = ANOMALY_RULES.failedLoginSpike;
  const at = (hoursAfter: number) => new Date(Date.parse('2025-01-08T00:00:00Z') + hoursAfter * HOUR).toISOString();
  /** A week before the range with `perHour` failed logins every hour. */
  const week = (perHour: number) => new Map(Array.from({ length: baselineHours }, (_, i) => [at(i - baselineHours), perHour]));

  it('flags an hour of at least 20 failures and 5 times the usual, the usual taken as at least 1', () => {
    expect(failedLoginSpikes([{ key: at(0), count: minCount }], new Map())).toEqual([{ rule: 'failed_login_spike', hour: at(0), count: minCount, baseline: 1 }]);
    expect(failedLoginSpikes([{ key: at(0), count: minCount - 1 }], new Map())).toEqual([]);
    // Usually 10 an hour: 49 is not a spike, 50 is.
    expect(failedLoginSpikes([{ key: at(0), count: factor * 10 - 1 }], week(10))).toEqual([]);
    expect(failedLoginSpikes([{ key: at(0), count: factor * 10 }], week(10))).toEqual([{ rule: 'failed_login_spike', hour: at(0), count: 50, baseline: 10 }]);
  });

  it('counts the 168 hours before each hour, the range itself included', () => {
    // A quiet week, then 30 in each of two hours: the second hour's week holds the first's 30.
    const hours = [{ key: at(0), count: 30 }, { key: at(1), count: 30 }];
    expect(failedLoginSpikes(hours, week(0))).toEqual([
      { rule: 'failed_login_spike', hour: at(0), count: 30, baseline: 1 },
      { rule: 'failed_login_spike', hour: at(1), count: 30, baseline: 1 },
    ]);
    // 5 an hour for a week: the baseline is 5, so 24 is no spike and 25 is.
    expect(failedLoginSpikes([{ key: at(0), count: 24 }], week(5))).toEqual([]);
    expect(failedLoginSpikes([{ key: at(0), count: 25 }], week(5))).toEqual([{ rule: 'failed_login_spike', hour: at(0), count: 25, baseline: 5 }]);
    // An hour 169 hours back no longer counts.
    const old = new Map([[at(-baselineHours - 1), 10_000]]);
    expect(failedLoginSpikes([{ key: at(0), count: 20 }], old)).toHaveLength(1);
    // The first hour of a range may have begun before it: the part before counts towards later
    // baselines (here 1,020 / 168 = 6.07, so 30 is no spike), not towards the hour's own count.
    const straddling = new Map([[at(0), 1000]]);
    expect(failedLoginSpikes([{ key: at(0), count: 20 }, { key: at(1), count: 30 }], straddling)).toEqual([{ rule: 'failed_login_spike', hour: at(0), count: 20, baseline: 1 }]);
  });
});
