import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { runTs } from './support/process.js';

/** The benchmark is not part of the suite; this only checks that `bench --smoke` (every scenario, in short turns) runs and reports. */
it('bench --smoke runs and writes valid results', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-bench-'));
  const result = await runTs('bench/run.ts', ['--smoke'], { DATABASE_URL: undefined, REDIS_URL: undefined, BENCH_RESULTS_DIR: dir }, 300_000);
  expect(result.code, result.stderr.slice(-2000)).toBe(0);
  expect(result.stdout).toMatch(/^floor_get_user\s+\d+/m);
  const json = JSON.parse(await readFile(path.join(dir, 'latest.json'), 'utf8'));
  await rm(dir, { recursive: true, force: true });
  expect(json).toMatchObject({ mode: 'smoke', machine: { cpus: expect.any(Number), node: process.version, postgres: expect.stringMatching(/^15\./) } });
  const names = json.scenarios.map((s: { name: string }) => s.name);
  expect(names).toEqual(['floor_get_user', 'get_user', 'list_users', 'graphql_get_user', 'get_user_metrics_off', 'get_user_metrics_on', 'create_user', 'create_user_with_webhook', 'floor_argon2_verify', 'login', 'refresh', 'oidc_token']);
  // Every user the webhook scenario made reached its endpoint, each once.
  expect(json.webhook_delivery.delivered).toBeGreaterThan(0);
  expect(json.webhook_delivery.distinct).toBe(json.webhook_delivery.delivered);
  expect(json.webhook_delivery.p99_ms).toBeGreaterThanOrEqual(json.webhook_delivery.p50_ms);
  // And every note of the steady-rate run, each once.
  expect(json.webhook_delivery_200.delivered).toBeGreaterThan(0);
  expect(json.webhook_delivery_200.distinct).toBe(json.webhook_delivery_200.delivered);
  // The lifecycle tenant: its export read to the end beside its COPY floor (the same tables,
  // so the same rows), then a fork of it holding at least its users and records.
  const { tenant, export_tenant: exported, floor_export_copy: copied, fork_tenant: fork } = json.lifecycle;
  expect(tenant).toMatchObject({ users: 200, records: 2000, rounds: 1 });
  for (const [name, run] of Object.entries({ export_tenant: exported, floor_export_copy: copied })) {
    expect(run.rows, name).toBeGreaterThan(tenant.users + tenant.records);
    expect(run.seconds, name).toBeGreaterThan(0);
    expect(run.rows_per_s, name).toBeGreaterThan(0);
    expect(run.bytes, name).toBeGreaterThan(0);
    expect(run.rounds, name).toHaveLength(tenant.rounds);
  }
  expect(exported.rows).toBe(copied.rows);
  expect(exported.ratio_to_floor).toBeGreaterThan(0);
  expect(exported.ratio_rounds).toHaveLength(tenant.rounds);
  expect(fork.rows).toBeGreaterThan(tenant.users + tenant.records);
  expect(fork.seconds).toBeGreaterThan(0);
  expect(fork.rows_per_s).toBeGreaterThan(0);
  for (const line of ['export_tenant', 'floor_export_copy', 'fork_tenant']) expect(result.stdout).toMatch(new RegExp(`^${line}\\s+\\d+ rows`, 'm'));
  // Audit analytics: a tenant of 20,000 audit rows, read by action and by day beside the same
  // statement straight through pg, each read from an index alone.
  const analytics = json.audit_analytics;
  expect(analytics).toMatchObject({ tenant: { rows: 20_000, days: 60, rounds: 1 }, range_days: 30, goal_ms: 200 });
  for (const group of [analytics.by_action, analytics.by_day]) {
    expect(group.p50_ms).toBeGreaterThan(0);
    expect(group.p99_ms).toBeGreaterThanOrEqual(group.p50_ms);
    expect(group.floor.p50_ms).toBeGreaterThan(0);
    expect(group.ratio_to_floor).toBeGreaterThan(0);
    expect(group.plan.scans.length).toBeGreaterThan(0);
    for (const scan of group.plan.scans) expect(scan).toMatch(/^Index Only Scan using audit_logs_\w+_idx on audit_logs$/);
  }
  expect(result.stdout).toMatch(/^audit_analytics\s+group_by=action p50 [\d.]+ ms/m);
  // Search: a tenant of 2,000 searchable rows of every type, the query shapes in turn through the
  // service beside the same statement straight through pg, and each query's plan.
  const search = json.search;
  expect(search).toMatchObject({ tenant: { rows: 2000, rounds: 1 }, goal_p99_ms: 50, goal_ratio_to_floor: 0.7 });
  expect(Object.keys(search.tenant.counts).sort()).toEqual(['attachments', 'events', 'logacalls', 'notes', 'reviews', 'tasks', 'teams', 'users']);
  for (const run of [search.search, search.floor_search, search.one_connection.search, search.one_connection.floor_search]) {
    expect(run.rps).toBeGreaterThan(0);
    expect(run.p99_ms).toBeGreaterThanOrEqual(run.p50_ms);
    expect(run.rounds).toHaveLength(1);
  }
  expect(search.search.ratio_to_floor).toBeGreaterThan(0);
  expect(Object.keys(search.plans)).toEqual(search.queries);
  for (const plan of Object.values(search.plans) as { scans: string[]; execution_ms: number }[]) expect(plan.scans.some((scan) => scan.includes('search_tsv_idx'))).toBe(true);
  expect(result.stdout).toMatch(/^search\s+\d+ rps, p50 [\d.]+ ms, p99 [\d.]+ ms; floor_search \d+ rps, .*; one connection p50 [\d.]+ ms/m);
  for (const s of json.scenarios) {
    expect(s.rps, s.name).toBeGreaterThan(0);
    expect(s.p99_ms, s.name).toBeGreaterThanOrEqual(s.p50_ms);
    if (s.floor) expect(s.ratio_to_floor, s.name).toBeGreaterThan(0);
    if (['get_user', 'list_users', 'graphql_get_user', 'login', 'refresh'].includes(s.name)) {
      expect(s.ratio_rounds, s.name).toHaveLength(json.settings.rounds);
      expect(s.ratio_paired, s.name).toBeGreaterThan(0);
      // One turn in the smoke run: all turns against all is that turn's own ratio.
      expect(s.ratio_all_turns, s.name).toBeCloseTo(s.ratio_rounds[0], 3);
    }
    // Where each request's CPU went, attributed to the process that answered it.
    const cpu = s.cpu_us_per_request;
    expect(Object.keys(cpu).sort(), s.name).toEqual(['floor', 'load_generator', 'postgres', 'service']);
    const [server, idle] = s.name.startsWith('floor') ? [cpu.floor, cpu.service] : [cpu.service, cpu.floor];
    expect(server, s.name).toBeGreaterThan(idle);
    expect(cpu.load_generator, s.name).toBeGreaterThan(0);
    if (s.name !== 'floor_argon2_verify') expect(cpu.postgres, s.name).toBeGreaterThan(0);
  }
  // Every measured run answered with 2xx only (a run with errors is no measurement).
  expect(json.failed_loads).toEqual([]);
  for (const s of json.scenarios) expect(s.errors, s.name).toBe(0);
  // Both sizes measured in turns, each with as many turns as the scenarios above.
  for (const read of [json.scale.get_user, json.scale.list_users]) {
    expect(read.p99_small_ms).toBeGreaterThan(0);
    expect(read.p99_large_ms).toBeGreaterThan(0);
    expect(read.p99_ratio_rounds).toHaveLength(json.settings.rounds);
    expect(read.cpu_us_per_request_large.service).toBeGreaterThan(0);
  }
  expect(json.provision_tenant.spare_median_ms).toBeGreaterThan(0);
  expect(json.migrate_all.failed).toBe(0);
  expect(json.postgres.service_connections).toBeLessThanOrEqual(json.postgres.pool_max);
  expect(json.memory.service_rss_mb_under_load).toBeGreaterThan(0);
  expect(json.memory.service_rss_mb_at_small).toBeGreaterThan(0);
}, 360_000);
