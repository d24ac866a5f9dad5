import { afterAll, beforeAll, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { childServiceEnv, createTestApp, type TestApp } from './support/app.js';
import { exited, startTs } from './support/process.js';
import { Receiver } from './support/receiver.js';
import { bearer, login, seedTenant } from './support/tenants.js';

/*
 * The service killed (SIGKILL) in the middle of delivering webhooks, then started again:
 * every committed event still reaches its endpoint at least once. Two tenants, each with its
 * own endpoint; the service runs as a real process on the test database.
 */

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
const slugs = ['cra', 'crb'] as const;
let t: TestApp;
const receivers = {} as Record<(typeof slugs)[number], Receiver>;

beforeAll(async () => {
  t = await createTestApp();
  for (const slug of slugs) {
    await seedTenant(t, slug);
    const token = (await login(t.app, slug, `admin@${slug}.example`)).access_token;
    receivers[slug] = await new Receiver().start();
    // A slow receiver: the kill lands while deliveries are in flight.
    receivers[slug].delayMs = 20;
    const hook = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/webhooks`, headers: bearer(token), payload: { url: receivers[slug].url, events: ['user.*'] } });
    expect(hook.statusCode, hook.body).toBe(201);
    // Committed now, delivered by the service process below (this in-process app dispatches nothing).
    for (let i = 0; i < 40; i++) {
      const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/users`, headers: bearer(token), payload: { email: `u${i}@${slug}.example`, password: 'A fine password 123!' } });
      expect(res.statusCode).toBe(201);
    }
  }
});
afterAll(async () => {
  await Promise.all(Object.values(receivers).map((r) => r.close()));
  await t?.close();
});

const env = () => childServiceEnv(t.db.url, { EVENTS_POLL_MS: '100', WEBHOOK_TIMEOUT_MS: '200' });

it('delivers every committed event at least once across a SIGKILL mid-delivery', { timeout: 120_000 }, async () => {
  const committed: Record<string, string[]> = {};
  for (const slug of slugs) {
    const schema = (await t.tenants.get(slug)).schema_name;
    committed[slug] = (await tenantDb(t.db.database.db, schema).selectFrom('outbox_events').select('id').where('type', 'like', 'user.%').orderBy('seq').execute()).map((r) => r.id);
    expect(committed[slug]).toHaveLength(40);
  }
  const got = (slug: (typeof slugs)[number]) => new Set(receivers[slug].events().map((e) => e.id));

  const first = await startTs('src/main.ts', env(), LISTENING);
  await receivers.cra.until(() => receivers.cra.got.length >= 10, 30_000);
  first.child.kill('SIGKILL');
  await exited(first.child);
  const before = { cra: got('cra').size, crb: got('crb').size };
  expect(before.cra).toBeLessThan(40);

  const second = await startTs('src/main.ts', env(), LISTENING);
  try {
    for (const slug of slugs) await receivers[slug].until(() => committed[slug]!.every((id) => got(slug).has(id)), 60_000);
  } finally {
    second.child.kill('SIGTERM');
    await exited(second.child);
  }
  for (const slug of slugs) {
    // Every event, and only this tenant's; a few may have come twice (at least once).
    expect([...got(slug)].sort()).toEqual([...committed[slug]!].sort());
    expect(receivers[slug].events().every((e) => e.tenant_slug === slug)).toBe(true);
  }
});
