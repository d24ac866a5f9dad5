import { Webhook } from 'standardwebhooks';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAudit } from '../src/audit/audit.js';
import { tenantDb } from '../src/db/database.js';
import { WebhookService } from '../src/events/webhooks/service.js';
import { isPrivateAddress } from '../src/events/webhooks/target.js';
import { createTestApp, TEST_CHANNEL_KEY, type TestApp } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { bearer } from './support/tenants.js';
import { Receiver } from './support/receiver.js';
import { SecretBox } from '../src/records/secrets.js';

/*
 * Events (SPEC §11): the outbox written with each audited change, signed webhook deliveries to
 * real HTTP receivers on 127.0.0.1, retries, the delivery log, two instances sharing the work.
 * Two tenants, each with its own endpoint.
 */

const FAST = { dispatch: true, pollMs: 100, retryDelaysMs: [150, 150], timeoutMs: 2_000 } as const;
const t = useTenants(['eva', 'evb'], { events: FAST });
const receivers: Record<'eva' | 'evb', Receiver> = {} as never;
const secrets: Record<string, string> = {};
const hooks: Record<string, string> = {};

async function addHook(slug: 'eva' | 'evb', url: string, events: string[]) {
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/webhooks`, headers: bearer(t.tokens[slug]), payload: { url, events, description: 'test receiver' } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret: string };
}

async function createUser(slug: 'eva' | 'evb', email: string) {
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/users`, headers: bearer(t.tokens[slug]), payload: { email, password: 'A fine password 123!' } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string };
}

beforeAll(async () => {
  for (const slug of ['eva', 'evb'] as const) {
    receivers[slug] = await new Receiver().start();
    const hook = await addHook(slug, receivers[slug].url, ['user.*', 'role.*']);
    secrets[slug] = hook.secret;
    hooks[slug] = hook.id;
  }
});
afterAll(async () => {
  for (const r of Object.values(receivers)) await r?.close();
});

describe('webhook endpoints', () => {
  it('answer the secret once, then never; list, get, change and refuse bad input naming the field', async () => {
    expect(secrets.eva).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const got = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/eva/webhooks/${hooks.eva}`, headers: bearer(t.tokens.eva) });
    expect(got.statusCode).toBe(200);
    expect(got.json()).not.toHaveProperty('secret');
    expect(got.json()).toMatchObject({ url: receivers.eva.url, events: ['user.*', 'role.*'], enabled: true });
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/eva/webhooks', headers: bearer(t.tokens.eva) });
    expect(list.json().items.map((h: { id: string }) => h.id)).toEqual([hooks.eva]);
    // The other tenant's endpoint is not this tenant's.
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/tenants/eva/webhooks/${hooks.evb}`, headers: bearer(t.tokens.eva) })).statusCode).toBe(404);

    const bad = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/eva/webhooks', headers: bearer(t.tokens.eva), payload: { url: 'ftp://example.com/x', events: ['user.created', 'nothing.here'] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors.map((e: { field: string }) => e.field)).toContain('events');
    const scheme = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/eva/webhooks', headers: bearer(t.tokens.eva), payload: { url: 'ftp://example.com/x', events: ['*'] } });
    expect(scheme.statusCode).toBe(400);
    expect(scheme.json().errors).toEqual([{ field: 'url', reason: 'must use http or https' }]);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/eva/webhooks', headers: bearer(t.tokens.eva) })).json().total).toBe(1);
  });

  it('refuse private, loopback and link-local targets unless private networks are allowed', async () => {
    const strict = new WebhookService(t.db.database.db, new SecretBox([TEST_CHANNEL_KEY]), { allowPrivateNetworks: false });
    const tenant = { id: 'x', slug: 'eva', schema: 'tenant_eva' } as never;
    const actor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null } as const;
    for (const url of ['http://127.0.0.1:9/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest/meta-data', 'http://[::1]/x', 'http://[::ffff:192.168.0.1]/x', 'http://localhost/x']) {
      await expect(strict.create(tenant, { url, events: ['*'] }, actor), url).rejects.toMatchObject({ code: 'request.invalid', errors: [{ field: 'url' }] });
    }
    expect(isPrivateAddress('8.8.8.8')).toBe(false);
    expect(isPrivateAddress('2606:4700:4700::1111')).toBe(false);
    expect(isPrivateAddress('100.64.0.1')).toBe(true);
  });

  it('are admins only by default: a manager cannot list them', async () => {
    const { seedUser, login } = await import('./support/tenants.js');
    const manager = await seedUser(t, 'eva', { email: 'manager@eva.example', roles: ['manager'] });
    const token = (await login(t.app, 'eva', manager.email)).access_token;
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/eva/webhooks', headers: bearer(token) })).statusCode).toBe(403);
  });
});

describe('deliveries', () => {
  it('arrive signed (Standard Webhooks), with the envelope of the change, each tenant to its own endpoint', async () => {
    const before = { eva: receivers.eva.got.length, evb: receivers.evb.got.length };
    const ann = await createUser('eva', 'ann@eva.example');
    const bob = await createUser('evb', 'bob@evb.example');
    for (const slug of ['eva', 'evb'] as const) await receivers[slug].until(() => receivers[slug].events().some((e) => e.type === 'user.created' && e.data.id === (slug === 'eva' ? ann.id : bob.id)));
    const got = receivers.eva.got.slice(before.eva).find((r) => JSON.parse(r.body).data.id === ann.id)!;
    // Verified as a receiver would, with the library's verify.
    const payload = new Webhook(secrets.eva!).verify(got.body, got.headers as Record<string, string>) as Record<string, unknown>;
    expect(payload).toMatchObject({ type: 'user.created', tenant_slug: 'eva', actor_user_id: t.admins.eva.id, data: { id: ann.id, email: 'ann@eva.example' } });
    expect(got.headers['webhook-id']).toBe(payload.id);
    expect(payload.id).toMatch(/^evt_/);
    expect(JSON.stringify(payload)).not.toContain('password_hash');
    // The other tenant's secret does not verify it, and neither endpoint saw the other's user.
    expect(() => new Webhook(secrets.evb!).verify(got.body, got.headers as Record<string, string>)).toThrow();
    expect(receivers.eva.events().some((e) => e.data.id === bob.id)).toBe(false);
    expect(receivers.evb.events().some((e) => e.data.id === ann.id)).toBe(false);
    // Filtered: a team is not in ['user.*', 'role.*'].
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/eva/teams', headers: bearer(t.tokens.eva), payload: { name: 'Not sent' } });
    const deliveries = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/eva/webhooks/${hooks.eva}/deliveries`, headers: bearer(t.tokens.eva) });
    expect(deliveries.json().items.find((d: { event_id: string }) => d.event_id === payload.id)).toMatchObject({ status: 'succeeded', attempts: 1, last_status_code: 200, event_type: 'user.created' });
    expect(deliveries.json().items.some((d: { event_type: string }) => d.event_type.startsWith('team.'))).toBe(false);
  });

  it('a 500 is retried and the receiver gets the same event id again; the log shows both attempts', async () => {
    const r = receivers.eva;
    const start = r.got.length;
    r.answer = (n) => (n === start + 1 ? 500 : 200);
    try {
      const cid = await createUser('eva', 'cid@eva.example');
      await r.until(() => r.got.length >= start + 2);
      const [first, second] = r.got.slice(start);
      expect(first!.headers['webhook-id']).toBe(second!.headers['webhook-id']);
      expect(JSON.parse(second!.body).data.id).toBe(cid.id);
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(100);
      const log = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/eva/webhooks/${hooks.eva}/deliveries?status=succeeded`, headers: bearer(t.tokens.eva) });
      expect(log.json().items.find((d: { event_id: string }) => d.event_id === first!.headers['webhook-id'])).toMatchObject({ attempts: 2, last_status_code: 200 });
    } finally {
      r.answer = () => 200;
    }
  });

  it('go out in event order per endpoint, and a failed delivery is sent again on demand', async () => {
    const r = receivers.evb;
    const start = r.got.length;
    // Every attempt of the first event fails (the schedule has two retries): it ends failed.
    let failing = true;
    r.answer = () => (failing ? 503 : 200);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await createUser('evb', `order${i}@evb.example`)).id);
    await r.until(() => r.got.length >= start + 3);
    const failed = await (async () => {
      for (let i = 0; i < 100; i++) {
        const page = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/evb/webhooks/${hooks.evb}/deliveries?status=failed`, headers: bearer(t.tokens.evb) });
        if (page.json().total > 0) return page.json().items[0] as { id: string; attempts: number; last_status_code: number };
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error('no delivery failed');
    })();
    expect(failed).toMatchObject({ attempts: 3, last_status_code: 503 });
    // Its three attempts came first, one after another: nothing behind it went out meanwhile.
    const firstThree = r.got.slice(start, start + 3).map((g) => g.headers['webhook-id']);
    expect(new Set(firstThree).size).toBe(1);
    expect(JSON.parse(r.got[start]!.body).data.id).toBe(made[0]);
    failing = false;
    await r.until(() => made.slice(1).every((id) => r.events().some((e) => e.data.id === id && e.type === 'user.created')));
    const retried = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/evb/webhooks/${hooks.evb}/deliveries/${failed.id}/retry`, headers: bearer(t.tokens.evb) });
    expect(retried.statusCode).toBe(202);
    await r.until(() => made.every((id) => r.events().some((e) => e.data.id === id)));
    // The later events arrived in the order they were made.
    const order = r.events().filter((e) => made.includes(e.data.id as string) && e.type === 'user.created').map((e) => e.data.id);
    expect(order.slice(-4)).toEqual(made.slice(-4));
    expect((await t.app.inject({ method: 'POST', url: `/api/v1/tenants/evb/webhooks/${hooks.evb}/deliveries/${hooks.evb}/retry`, headers: bearer(t.tokens.evb) })).statusCode).toBe(404);
    r.answer = () => 200;
  });

  it('a rolled-back change writes no event and sends nothing', async () => {
    const db = tenantDb(t.db.database.db, 'tenant_eva');
    const count = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM tenant_eva.outbox_events`.execute(t.db.database.db)).rows[0]!.n);
    const before = await count();
    const actor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null } as const;
    await expect(
      db.transaction().execute(async (trx) => {
        await writeAudit(trx, actor, { action: 'users.update', entityType: 'users', entityId: t.admins.eva.id, after: { id: t.admins.eva.id, first_name: 'Ghost' } });
        throw new Error('injected after the audit row');
      }),
    ).rejects.toThrow('injected');
    expect(await count()).toBe(before);
    await new Promise((r) => setTimeout(r, 400));
    expect(receivers.eva.events().some((e) => e.data.first_name === 'Ghost')).toBe(false);
  });

  it('an endpoint failing for longer than allowed is disabled, audited, and its event recorded', async () => {
    const r = await new Receiver().start();
    r.answer = () => 500;
    // An instance that disables after 0.2 s of failures, alone at work meanwhile.
    const app = await createTestApp({ database: t.db, events: { ...FAST, dispatch: false, disableAfterDays: 0.2 / 86_400 } });
    await t.services.dispatcher.stop();
    try {
      const hook = await addHook('eva', r.url, ['user.*']);
      app.services.dispatcher.start();
      await createUser('eva', 'dan@eva.example');
      const db = tenantDb(t.db.database.db, 'tenant_eva');
      for (let i = 0; i < 200; i++) {
        const row = await db.selectFrom('webhooks').select(['enabled', 'disabled_reason']).where('id', '=', hook.id).executeTakeFirstOrThrow();
        if (!row.enabled) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      const row = await db.selectFrom('webhooks').select(['enabled', 'disabled_reason']).where('id', '=', hook.id).executeTakeFirstOrThrow();
      expect(row.enabled).toBe(false);
      expect(row.disabled_reason).toMatch(/failing since .*answered 500/);
      const audit = await db.selectFrom('audit_logs').select(['action', 'actor_type']).where('entity_id', '=', hook.id).where('action', '=', 'webhooks.disable').execute();
      expect(audit).toEqual([{ action: 'webhooks.disable', actor_type: 'system' }]);
      const event = await db.selectFrom('outbox_events').select('type').where('type', '=', 'webhook.disabled').execute();
      expect(event).toHaveLength(1);
      await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/eva/webhooks/${hook.id}`, headers: bearer(t.tokens.eva) });
    } finally {
      await app.app.close();
      t.services.dispatcher.start();
      await r.close();
    }
  });
});

describe('two instances on one database', () => {
  let second: TestApp;
  beforeAll(async () => {
    second = await createTestApp({ database: t.db, events: FAST });
  });
  afterAll(async () => second?.app.close());

  it('deliver each of 500 events exactly once between them', async () => {
    const r = await new Receiver().start();
    try {
      const hook = await addHook('evb', r.url, ['setting.*']);
      const db = tenantDb(t.db.database.db, 'tenant_evb');
      const actor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null } as const;
      // 500 changes in 50 transactions, as fast as they commit.
      for (let batch = 0; batch < 50; batch++) {
        await db.transaction().execute(async (trx) => {
          for (let i = 0; i < 10; i++) await writeAudit(trx, actor, { action: 'settings.update', entityType: 'settings', entityId: `s${batch * 10 + i}`, after: { key: 'x', n: batch * 10 + i } });
        });
      }
      await r.until(() => r.got.length >= 500, 30_000);
      await new Promise((res) => setTimeout(res, 500));
      const ids = r.got.map((g) => g.headers['webhook-id']);
      expect(ids).toHaveLength(500);
      expect(new Set(ids).size).toBe(500);
      // In order, too.
      expect(r.events().map((e) => e.data.n)).toEqual(Array.from({ length: 500 }, (_, i) => i));
      await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/evb/webhooks/${hook.id}`, headers: bearer(t.tokens.evb) });
    } finally {
      await r.close();
    }
  });
});
