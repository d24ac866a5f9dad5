import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { Receiver } from './support/receiver.js';
import { bearer, login, PASSWORD } from './support/tenants.js';

const TOKEN = 'metrics-token-0123456789abcdef';

/** Every log line the app writes, parsed. */
class LogLines extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}
const logs = new LogLines();

/** One sample's value from a Prometheus exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[3] ?? '').split(/,(?=[a-z_]+=)/).filter(Boolean);
    if (want.every((w) => have.includes(w))) return Number(m[4]);
  }
  return 0;
}

describe('GET /metrics and the request log', () => {
  const t = useTenants(['oa', 'ob'], { logger: pino({ level: 'info' }, logs), observability: { token: TOKEN, tenantLabels: 1 }, events: { dispatch: true, pollMs: 50 } });
  const receiver = new Receiver();
  beforeAll(() => receiver.start());
  afterAll(() => receiver.close());
  const scrape = async () => {
    const res = await t.app.inject({ url: '/metrics', headers: bearer(TOKEN) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.body;
  };

  it('requires METRICS_TOKEN as a Bearer token when it is set', async () => {
    const none = await t.app.inject({ url: '/metrics' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['content-type']).toMatch(/problem\+json/);
    expect((await t.app.inject({ url: '/metrics', headers: bearer(`${TOKEN}x`) })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/metrics', headers: bearer(TOKEN.slice(0, -1)) })).statusCode).toBe(401);
    await scrape();
  });

  it('times requests by route template, method and status class, with no tenant in those labels', async () => {
    const before = await scrape();
    const route = '/api/v1/tenants/:tenant_slug/users/:user_id';
    const ok = () => ({ route, method: 'GET', status_class: '2xx' });
    const count0 = sample(before, 'http_request_duration_seconds_count', ok());
    for (const slug of ['oa', 'ob'] as const) {
      const res = await t.app.inject({ url: `/api/v1/tenants/${slug}/users/${t.admins[slug].id}`, headers: bearer(t.tokens[slug]) });
      expect(res.statusCode).toBe(200);
    }
    const missing = await t.app.inject({ url: `/api/v1/tenants/oa/users/00000000-0000-4000-8000-000000000000`, headers: bearer(t.tokens.oa) });
    expect(missing.statusCode).toBe(404);
    const after = await scrape();
    expect(sample(after, 'http_request_duration_seconds_count', ok())).toBe(count0 + 2);
    expect(sample(after, 'http_request_duration_seconds_count', { ...ok(), status_class: '4xx' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'http_request_duration_seconds_bucket', { ...ok(), le: '+Inf' })).toBe(count0 + 2);
    // Unrouted paths share one label value, so a scanner cannot grow the series.
    await t.app.inject({ url: '/no/such/path/x1' });
    await t.app.inject({ url: '/no/such/path/x2' });
    const unmatched = await scrape();
    expect(unmatched).not.toContain('x1');
    expect(sample(unmatched, 'http_request_duration_seconds_count', { route: 'unmatched', method: 'GET', status_class: '4xx' })).toBeGreaterThanOrEqual(2);
    // The only tenant label is the opt-in top-N counter (tenantLabels: 1 here).
    for (const line of after.split('\n').filter((l) => !l.startsWith('#') && /tenant="/.test(l))) expect(line).toMatch(/^http_requests_by_tenant_total\{tenant="/);
  });

  it('labels only the busiest tenants when asked, the others as "other"', async () => {
    for (let i = 0; i < 5; i++) await t.app.inject({ url: '/api/v1/tenants/oa/me', headers: bearer(t.tokens.oa) });
    const text = await scrape();
    expect(sample(text, 'http_requests_by_tenant_total', { tenant: 'oa' })).toBeGreaterThan(0);
    expect(sample(text, 'http_requests_by_tenant_total', { tenant: 'ob' })).toBe(0);
    expect(sample(text, 'http_requests_by_tenant_total', { tenant: 'other' })).toBeGreaterThan(0);
  });

  it('counts login outcomes, cache reads, pool connections, migration states and process figures', async () => {
    const before = await scrape();
    await login(t.app, 'oa', t.admins.oa.email);
    const bad = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ob/auth/login', payload: { email: t.admins.ob.email, password: 'not the password' } });
    expect(bad.statusCode).toBe(401);
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ob/auth/login', payload: { email: 'nobody@ob.example', password: 'whatever it is' } });
    const after = await scrape();
    for (const outcome of ['succeeded', 'bad_password', 'unknown_user']) {
      expect(sample(after, 'auth_logins_total', { outcome }) - sample(before, 'auth_logins_total', { outcome }), outcome).toBe(1);
    }
    expect(sample(after, 'cache_requests_total', { cache: 'tenant', result: 'hit' })).toBeGreaterThan(0);
    expect(sample(after, 'cache_requests_total', { cache: 'session', result: 'hit' }) + sample(after, 'cache_requests_total', { cache: 'session', result: 'miss' })).toBeGreaterThan(0);
    expect(sample(after, 'db_pool_connections', { state: 'total' })).toBeGreaterThan(0);
    expect(after).toMatch(/^db_pool_connections\{state="waiting"\} \d+$/m);
    expect(sample(after, 'db_pool_acquire_seconds_count')).toBeGreaterThan(0);
    // Both tenants' schemas are migrated.
    expect(sample(after, 'tenant_migrations', { state: 'done' })).toBeGreaterThanOrEqual(2);
    expect(sample(after, 'tenant_migrations', { state: 'failed' })).toBe(0);
    expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(after).toMatch(/^nodejs_eventloop_lag_seconds \S+$/m);
  });

  it('counts outbox dispatches and webhook deliveries, and reports the outbox lag', async () => {
    const hook = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/oa/webhooks', headers: bearer(t.tokens.oa), payload: { url: receiver.url, events: ['user.created'] } });
    expect(hook.statusCode).toBe(201);
    const before = await scrape();
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/oa/users', headers: bearer(t.tokens.oa), payload: { email: 'hooked@oa.example', password: PASSWORD, first_name: 'Hooked' } });
    expect(created.statusCode).toBe(201);
    await receiver.until(() => receiver.events().some((e) => e.type === 'user.created'));
    // The success is recorded after the receiver answered.
    let after = await scrape();
    for (let i = 0; i < 100 && sample(after, 'webhook_deliveries_total', { outcome: 'succeeded' }) === sample(before, 'webhook_deliveries_total', { outcome: 'succeeded' }); i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await scrape();
    }
    expect(sample(after, 'webhook_deliveries_total', { outcome: 'succeeded' }) - sample(before, 'webhook_deliveries_total', { outcome: 'succeeded' })).toBe(1);
    expect(sample(after, 'events_dispatched_total')).toBeGreaterThan(sample(before, 'events_dispatched_total'));
    expect(sample(after, 'events_dispatch_lag_seconds_count')).toBeGreaterThan(0);
    expect(after).toMatch(/^events_outbox_lag_seconds \d+(\.\d+)?(e[-+]\d+)?$/m);
  });

  it('writes one JSON line per request with no password, token, key or Authorization value in any line', async () => {
    logs.lines.length = 0;
    logs.raw.length = 0;
    const tokens = await login(t.app, 'ob', t.admins.ob.email);
    const refreshed = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ob/auth/refresh', payload: { refresh_token: tokens.refresh_token } });
    expect(refreshed.statusCode).toBe(200);
    const access = refreshed.json().access_token as string;
    const keyRes = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ob/me/api-keys', headers: bearer(access), payload: { name: 'log test', permissions: ['users.read'] } });
    expect(keyRes.statusCode).toBe(201);
    const key = keyRes.json().key as string;
    const listed = await t.app.inject({ url: '/api/v1/tenants/ob/users?page_size=5', headers: { 'x-api-key': key } });
    expect(listed.statusCode).toBe(200);
    // A ticket in a query string stays out of the line too.
    await t.app.inject({ url: '/api/v1/tenants/ob/users?ticket=secret-ticket-value', headers: bearer(access) });
    const secrets = [PASSWORD, tokens.access_token, tokens.refresh_token, refreshed.json().refresh_token as string, access, key, 'secret-ticket-value'];
    for (const line of logs.raw) for (const secret of secrets) expect(line).not.toContain(secret);
    expect(logs.raw.join('\n')).not.toMatch(/authorization|bearer/i);

    const requests = logs.lines.filter((l) => l.msg === 'request');
    expect(requests).toHaveLength(5);
    const [signIn, refresh, keyMade, withKey] = requests;
    expect(signIn).toMatchObject({ level: 30, method: 'POST', route: '/api/v1/tenants/:tenant_slug/auth/login', path: '/api/v1/tenants/ob/auth/login', status: 200, tenant: 'ob' });
    expect(refresh).toMatchObject({ route: '/api/v1/tenants/:tenant_slug/auth/refresh', status: 200, tenant: 'ob' });
    expect(keyMade).toMatchObject({ status: 201, tenant: 'ob', user: t.admins.ob.id });
    expect(withKey).toMatchObject({ route: '/api/v1/tenants/:tenant_slug/users', status: 200, tenant: 'ob', user: t.admins.ob.id, api_key: expect.any(String) });
    for (const line of requests) {
      expect(line.reqId).toEqual(expect.any(String));
      expect(line.duration_ms).toEqual(expect.any(Number));
    }
    // The request id is the one the caller sees.
    const res = await t.app.inject({ url: '/api/v1/tenants/oa/me', headers: bearer(t.tokens.oa) });
    expect(logs.lines.at(-1)).toMatchObject({ msg: 'request', reqId: res.headers['x-request-id'], user: t.admins.oa.id, tenant: 'oa', status: 200 });
  });
});

describe('GET /metrics without METRICS_TOKEN', () => {
  const t = useTenants(['oc', 'od'], { login: false });
  it('answers without a token, and has no tenant labels', async () => {
    await t.app.inject({ url: '/api/v1/tenants/oc/me' });
    const res = await t.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('http_request_duration_seconds_bucket');
    expect(sample(res.body, 'http_requests_by_tenant_total', { tenant: 'oc' })).toBe(0);
  });
});
