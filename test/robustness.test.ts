import { expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer, login } from './support/tenants.js';

/** Whatever the input, no route answers 500: every tenant and platform route, with garbage. */
const t = useTenants(['fuzz_a', 'fuzz_b']);

const PARAMS = ["'; DROP SCHEMA shared CASCADE; --", '00000000-0000-4000-8000-000000000000', 'x'.repeat(5000), '%00', '..%2F..%2Fetc', 'fuzz_b', '-1'];
const BODIES: unknown[] = [undefined, {}, [], 'text', 12, { email: 42, password: null, roles: 'admin', name: { a: 1 }, value: [1, [2]], permissions: [null], effect: 7, parent_team_id: 'x' }, { email: `${'a'.repeat(300)}@x.io`, slug: 'Ünïcode', name: '\u0000' }];
const QUERIES = ['', '?page=-1', '?page_size=100000', "?search=%27%20OR%201=1--&sort=id;drop", '?from=yesterday&to=never', '?status[]=a&role=%00'];

it('answers every route with garbage input without a 500', async () => {
  const routes = [
    ...t.app.tenantRouteRules.map((r) => ({ method: r.method, url: r.url })),
    { method: 'POST', url: '/api/v1/tenants' },
    { method: 'GET', url: '/api/v1/tenants/:tenant_id' },
    { method: 'POST', url: '/api/v1/tenants/:tenant_id/initialize' },
  ];
  const system = await t.systemToken();
  let requests = 0;
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  for (const route of routes) {
    // A fresh session per route: a route that ends sessions must not hide the others.
    t.tokens.fuzz_a = (await login(t.app, 'fuzz_a', 'admin@fuzz_a.example')).access_token;
    for (const param of PARAMS) {
      const url = route.url.replace(':tenant_slug', 'fuzz_a').replace(/:[a-z_]+/g, encodeURIComponent(param));
      for (const [i, body] of BODIES.entries()) {
        const query = QUERIES[i % QUERIES.length]!;
        const res = await t.app.inject({
          method: route.method as 'GET',
          url: url + query,
          headers: { ...bearer(url.startsWith('/api/v1/tenants/fuzz_a') ? t.tokens.fuzz_a : system), 'if-match': i % 2 ? 'garbage' : '"1"', 'idempotency-key': i % 3 ? 'k'.repeat(300) : 'fuzz', ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined && route.method !== 'GET' ? { payload: typeof body === 'string' ? body : JSON.stringify(body), headers: { ...bearer(url.startsWith('/api/v1/tenants/fuzz_a') ? t.tokens.fuzz_a : system), 'content-type': 'application/json' } } : {}),
        });
        requests++;
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode >= 500) failures.push(`${route.method} ${url.slice(0, 120)}${query} ${JSON.stringify(body)?.slice(0, 80)} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
      }
    }
  }
  expect(failures).toEqual([]);
  // The inputs reached the handlers (not only the authentication in front of them).
  expect(statuses.get(401) ?? 0).toBeLessThan(requests / 4);
  expect(requests).toBeGreaterThan(1000);
}, 300_000);
