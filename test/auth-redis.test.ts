import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { describeWithRedis, redisCaches } from './support/redis.js';
import { bearer, login, seedTenant, seedUser } from './support/tenants.js';

/** Two instances of the service sharing one PostgreSQL and one Redis. */
let one: TestApp;
let two: TestApp;
const redis = redisCaches();

beforeAll(async () => {
  if (!inject('redisUrl')) return;
  const prefix = `two-instances-${randomUUID()}:`;
  one = await createTestApp({ cache: await redis.connect(prefix) });
  two = await createTestApp({ cache: await redis.connect(prefix), database: one.db });
  await seedTenant(one, 'north');
  await seedTenant(one, 'south');
});
afterAll(async () => {
  await two?.close();
  await one?.close();
  await redis.close();
});

const me = (t: TestApp, slug: string, token: string) => t.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/me`, headers: bearer(token) });

async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${ms} ms`);
}

describeWithRedis('two instances with Redis', () => {
  it('a logout on one instance is refused on the other within 1 s', async () => {
    const tokens = await login(one.app, 'north', 'admin@north.example');
    // Both instances have the session cached as live.
    expect((await me(one, 'north', tokens.access_token)).statusCode).toBe(200);
    expect((await me(two, 'north', tokens.access_token)).statusCode).toBe(200);
    expect((await me(two, 'north', tokens.access_token)).statusCode).toBe(200);

    const logout = await one.app.inject({ method: 'POST', url: '/api/v1/tenants/north/auth/logout', headers: bearer(tokens.access_token) });
    expect(logout.statusCode).toBe(204);
    const elapsed = await within(1000, async () => (await me(two, 'north', tokens.access_token)).statusCode === 401);
    expect(elapsed).toBeLessThan(1000);
  });

  it('a role change on one instance applies on the other at once, per tenant', async () => {
    const user = await seedUser(one, 'south', { email: 'mover@south.example', roles: ['manager'] });
    const peer = await seedUser(one, 'south', { email: 'peer@south.example', roles: ['viewer'] });
    const token = (await login(two.app, 'south', user.email)).access_token;
    const url = `/api/v1/tenants/south/users/${peer.id}/roles`;
    expect((await two.app.inject({ method: 'PUT', url, headers: bearer(token), payload: { roles: ['user'] } })).statusCode).toBe(200);

    const adminToken = (await login(one.app, 'south', 'admin@south.example')).access_token;
    const demote = await one.app.inject({ method: 'PUT', url: `/api/v1/tenants/south/users/${user.id}/roles`, headers: bearer(adminToken), payload: { roles: ['viewer'] } });
    expect(demote.statusCode).toBe(200);
    await within(1000, async () => (await two.app.inject({ method: 'PUT', url, headers: bearer(token), payload: { roles: ['viewer'] } })).statusCode === 403);
  });
});

describeWithRedis('readiness with Redis', () => {
  it('reports redis in /ready, and 503 naming it when it is down', async () => {
    const up = await redis.connect(`ready-${randomUUID()}:`);
    const down = await redis.connect('down:', 'redis://127.0.0.1:9');
    const { buildApp } = await import('../src/app.js');
    const { databaseCheck } = await import('../src/health/routes.js');
    for (const [cache, status] of [[up, 200], [down, 503]] as const) {
      const app = await buildApp({ keys: one.keys, tenants: one.tenants, lifecycle: one.lifecycle, services: one.services, logger: false, readiness: { database: databaseCheck(one.db.database.db), redis: () => cache.ping() } });
      const res = await app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(status);
      expect(res.json().checks.database).toBe('ok');
      if (status === 200) expect(res.json().checks.redis).toBe('ok');
      else expect(res.json().detail).toMatch(/^redis: /);
      await app.close();
    }
  });
});

describeWithRedis('Redis down', () => {
  it('keeps answering from PostgreSQL and never fails open', async () => {
    // An instance whose Redis does not answer (nothing listens on port 9).
    const down = await createTestApp({ cache: await redis.connect('down:', 'redis://127.0.0.1:9'), database: one.db });
    try {
      const tokens = await login(down.app, 'north', 'admin@north.example');
      expect((await me(down, 'north', tokens.access_token)).statusCode).toBe(200);
      expect((await me(down, 'north', tokens.access_token)).statusCode).toBe(200);
      // Revoked behind its back (by another instance; the invalidation cannot reach it).
      const other = await login(one.app, 'north', 'admin@north.example');
      expect((await me(down, 'north', other.access_token)).statusCode).toBe(200);
      await one.app.inject({ method: 'POST', url: '/api/v1/tenants/north/auth/logout', headers: bearer(other.access_token) });
      expect((await me(down, 'north', other.access_token)).statusCode).toBe(401);
      // Authentication routes keep working (the per-IP limit counts in-process meanwhile).
      const res = await down.app.inject({ method: 'POST', url: '/api/v1/tenants/north/auth/refresh', payload: { refresh_token: tokens.refresh_token } });
      expect(res.statusCode).toBe(200);
    } finally {
      await down.close();
    }
  });
});
