import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { createTestApp, type TestApp } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { describeWithRedis, redisCaches } from './support/redis.js';
import { bearer, login, seedTenant, seedUser } from './support/tenants.js';

/*
 * Realtime (SPEC §11): real WebSocket clients against the listening service, two tenants. What
 * a socket receives is decided per message from current permissions; a revoked session's
 * socket closes at once; events reach sockets on every instance (outbox feed, and Redis).
 */

interface Message {
  readonly type: string;
  readonly id?: string;
  readonly tenant_slug?: string;
  readonly data?: Record<string, unknown>;
  readonly events?: string[];
  readonly code?: string;
}

/** A WebSocket client that keeps what it got. */
class Client {
  readonly got: Message[] = [];
  closed: { code: number; reason: string; at: number } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.got.push(JSON.parse(data.toString()) as Message));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString(), at: Date.now() }));
  }

  /** Opens a socket; resolves once the server said `ready`, or rejects with the HTTP status of a refused upgrade. */
  static open(url: string, headers: Record<string, string> = {}, options: WebSocket.ClientOptions = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, ...options });
      const client = new Client(ws);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        // The server ends a refused upgrade's connection: a socket left open would hold its shutdown.
        const ended = new Promise<boolean>((done) => (res.socket.destroyed ? done(true) : res.socket.once('close', () => done(true))));
        res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(body || '{}'), ended })));
      });
      ws.once('error', reject);
      const ready = () => (client.got.some((m) => m.type === 'ready') ? resolve(client) : setTimeout(ready, 5));
      ws.once('open', ready);
    });
  }

  events(): Message[] {
    return this.got.filter((m) => m.id?.startsWith('evt_'));
  }

  types(): string[] {
    return this.events().map((m) => m.type);
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  async until(test: () => boolean, ms = 5_000): Promise<void> {
    const end = Date.now() + ms;
    while (!test()) {
      if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(this.got).slice(0, 2000)} closed ${JSON.stringify(this.closed)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.ws.close();
  }
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => ({ status: 101, body: {} as Record<string, unknown>, ended: Promise.resolve(false) }),
    (e: { status?: number; body?: Record<string, unknown>; ended?: Promise<boolean> }) => ({ status: e.status ?? 0, body: e.body ?? {}, ended: e.ended ?? Promise.resolve(false) }),
  );

async function listen(t: TestApp): Promise<string> {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  return `ws://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/api/v1/tenants`;
}

describe('realtime sockets on one instance', () => {
  const t = useTenants(['rta', 'rtb'], { events: { pollMs: 100 }, realtime: { heartbeatMs: 300 } });
  let base = '';
  const clients: Client[] = [];
  const track = (c: Client) => (clients.push(c), c);
  beforeAll(async () => {
    base = await listen(t);
  });
  afterAll(() => clients.forEach((c) => c.close()));

  const api = (slug: string, token: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `/api/v1/tenants/${slug}/${url}`, headers: bearer(token), ...(payload ? { payload } : {}) });
  const createUser = async (slug: 'rta' | 'rtb', email: string) => {
    const res = await api(slug, t.tokens[slug], 'POST', 'users', { email, password: 'A fine password 123!' });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string };
  };
  const ticket = async (slug: string, token: string) => {
    const res = await api(slug, token, 'POST', 'realtime/tickets');
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { ticket: string; expires_in: number };
  };

  it('sends each tenant its own events, signed in by Bearer or by a single-use ticket', async () => {
    const a = track(await Client.open(`${base}/rta/realtime`, bearer(t.tokens.rta)));
    const issued = await ticket('rtb', t.tokens.rtb);
    expect(issued.expires_in).toBe(60);
    const b = track(await Client.open(`${base}/rtb/realtime?ticket=${issued.ticket}`));
    expect(b.got[0]).toEqual({ type: 'ready', tenant_slug: 'rtb', events: ['*'] });

    const user = await createUser('rta', 'streamed@rta.example');
    await a.until(() => a.types().includes('user.created'));
    const event = a.events().find((m) => m.type === 'user.created')!;
    expect(event).toMatchObject({ tenant_slug: 'rta', data: { id: user.id, email: 'streamed@rta.example' } });
    expect(event.data).not.toHaveProperty('password_hash');
    const other = await createUser('rtb', 'streamed@rtb.example');
    await b.until(() => b.events().some((m) => m.data?.id === other.id));
    expect(b.events().every((m) => m.tenant_slug === 'rtb')).toBe(true);
    expect(a.events().every((m) => m.tenant_slug === 'rta')).toBe(true);

    // The ticket was used: a second upgrade with it is refused, as is one of another tenant.
    expect((await refusal(Client.open(`${base}/rtb/realtime?ticket=${issued.ticket}`))).status).toBe(401);
    const another = await ticket('rtb', t.tokens.rtb);
    const cross = await refusal(Client.open(`${base}/rta/realtime?ticket=${another.ticket}`));
    expect(cross.status).toBe(401);
    expect(cross.body.code).toBe('auth.invalid_ticket');
  });

  it('refuses an upgrade without credentials (401), with a forged token (401), and a plain GET (426)', async () => {
    const none = await refusal(Client.open(`${base}/rta/realtime`));
    expect(none).toMatchObject({ status: 401, body: { code: 'auth.credentials_required' } });
    expect(await Promise.race([none.ended, new Promise((r) => setTimeout(() => r('still open'), 2_000))])).toBe(true);
    expect((await refusal(Client.open(`${base}/rta/realtime`, bearer(`${t.tokens.rta}x`)))).status).toBe(401);
    // rta's token on rtb's stream: the token names its tenant.
    expect((await refusal(Client.open(`${base}/rtb/realtime`, bearer(t.tokens.rta)))).status).toBe(403);
    expect((await refusal(Client.open(`${base}/nope/realtime`, bearer(t.tokens.rta)))).status).toBe(404);
    const plain = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/rta/realtime', headers: bearer(t.tokens.rta) });
    expect(plain.statusCode).toBe(426);
    expect(plain.json()).toMatchObject({ code: 'realtime.upgrade_required' });
    const badTicket = await refusal(Client.open(`${base}/rta/realtime?ticket=rtt_nope`));
    expect(badTicket).toMatchObject({ status: 401, body: { code: 'auth.invalid_ticket' } });
  });

  it("never sends a viewer session, API key or sign-in events, and follows a lost permission at once", async () => {
    const viewer = await seedUser(t, 'rta', { email: 'watcher@rta.example', roles: ['user'] });
    const viewerTokens = await login(t.app, 'rta', viewer.email);
    const v = track(await Client.open(`${base}/rta/realtime?ticket=${(await ticket('rta', viewerTokens.access_token)).ticket}`));
    const admin = track(await Client.open(`${base}/rta/realtime`, bearer(t.tokens.rta)));

    const key = await api('rta', t.tokens.rta, 'POST', 'me/api-keys', { name: 'ci', permissions: ['users.read'] });
    expect(key.statusCode).toBe(201);
    const victim = await seedUser(t, 'rta', { email: 'victim@rta.example' });
    await login(t.app, 'rta', victim.email);
    expect((await api('rta', t.tokens.rta, 'DELETE', `users/${victim.id}/sessions`)).statusCode).toBe(200);
    const sentinel = await createUser('rta', 'sentinel@rta.example');
    for (const c of [v, admin]) await c.until(() => c.events().some((m) => m.data?.id === sentinel.id));
    expect(admin.types()).toEqual(expect.arrayContaining(['api_key.created', 'auth.login', 'session.revoked', 'user.created']));
    expect(v.types().filter((type) => /^(session|api_key|auth)\./.test(type))).toEqual([]);
    expect(v.types()).toContain('user.created');

    // The viewer loses users.read (a role with teams.read only): user events stop, team events still come.
    const role = await api('rta', t.tokens.rta, 'POST', 'roles', { name: 'teams-only', permissions: ['teams.read'], priority: 5 });
    expect(role.statusCode, role.body).toBe(201);
    expect((await api('rta', t.tokens.rta, 'PUT', `users/${viewer.id}/roles`, { roles: ['teams-only'] })).statusCode).toBe(200);
    const seen = v.events().length;
    await createUser('rta', 'unseen@rta.example');
    const team = await api('rta', t.tokens.rta, 'POST', 'teams', { name: 'Streamers' });
    expect(team.statusCode, team.body).toBe(201);
    await v.until(() => v.types().includes('team.created'));
    expect(v.events().slice(seen).map((m) => m.type)).toEqual(['team.created']);
  });

  it('narrows the stream to a subscription, and answers a bad one with an error message', async () => {
    const c = track(await Client.open(`${base}/rtb/realtime`, bearer(t.tokens.rtb)));
    c.send({ type: 'subscribe', events: ['role.*'] });
    await c.until(() => c.got.some((m) => m.type === 'subscribed'));
    expect(c.got.find((m) => m.type === 'subscribed')!.events).toEqual(['role.*']);
    await createUser('rtb', 'filtered@rtb.example');
    const role = await api('rtb', t.tokens.rtb, 'POST', 'roles', { name: 'auditors', permissions: ['audit_logs.read'], priority: 5 });
    expect(role.statusCode).toBe(201);
    await c.until(() => c.types().includes('role.created'));
    expect(c.types()).toEqual(['role.created']);

    c.send({ type: 'subscribe', events: ['not a type'] });
    c.ws.send('not json');
    c.send({ type: 'ping' });
    await c.until(() => c.got.filter((m) => m.type === 'error').length === 2 && c.got.some((m) => m.type === 'pong'));
    expect(c.got.filter((m) => m.type === 'error').every((m) => m.code === 'request.invalid')).toBe(true);
    expect(c.closed).toBeNull();
  });

  it("closes a revoked session's socket within a second, and an API key's when the key is revoked", async () => {
    const user = await seedUser(t, 'rtb', { email: 'leaver@rtb.example', roles: ['user'] });
    const tokens = await login(t.app, 'rtb', user.email);
    const c = track(await Client.open(`${base}/rtb/realtime`, bearer(tokens.access_token)));
    const revokedAt = Date.now();
    expect((await api('rtb', t.tokens.rtb, 'DELETE', `users/${user.id}/sessions`)).statusCode).toBe(200);
    await c.until(() => c.closed !== null, 1_000);
    expect(c.closed!.code).toBe(4401);
    expect(c.closed!.at - revokedAt).toBeLessThan(1_000);

    const created = await api('rtb', t.tokens.rtb, 'POST', 'me/api-keys', { name: 'stream', permissions: ['users.read'] });
    const key = created.json() as { id: string; key: string };
    const k = track(await Client.open(`${base}/rtb/realtime`, { 'x-api-key': key.key }));
    const seen = await createUser('rtb', 'keyed@rtb.example');
    await k.until(() => k.events().some((m) => m.data?.id === seen.id));
    expect((await api('rtb', t.tokens.rtb, 'DELETE', `me/api-keys/${key.id}`)).statusCode).toBe(204);
    await k.until(() => k.closed !== null, 1_000);
    expect(k.closed!.code).toBe(4401);
  });

  it('drops a client that does not answer pings', async () => {
    const c = track(await Client.open(`${base}/rta/realtime`, bearer(t.tokens.rta), { autoPong: false }));
    await c.until(() => c.closed !== null, 2_000);
    expect(c.closed!.code).toBe(1006);
  });
});

describe('a client that stops reading', () => {
  const t = useTenants(['slowa', 'slowb'], { events: { pollMs: 100 }, realtime: { maxBufferedBytes: 64 * 1024 } });

  it('is disconnected, not buffered for without bound', async () => {
    const base = await listen(t);
    const c = await Client.open(`${base}/slowa/realtime`, bearer(t.tokens.slowa));
    const calm = await Client.open(`${base}/slowa/realtime`, bearer(t.tokens.slowa));
    c.ws.pause();
    const body = 'x'.repeat(60_000);
    const schema = (await t.tenants.get('slowa')).schema_name;
    expect(t.services.realtime.count(schema)).toBe(2);
    let sent = 0;
    // Each note is ~60 KB on the wire; the socket buffers of the two ends fill up, then the
    // service's own limit is passed and it cuts the paused client (which notices on resuming).
    while (t.services.realtime.count(schema) === 2 && sent < 400) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/slowa/notes', headers: bearer(t.tokens.slowa), payload: { title: `n${sent}`, content: body } });
      expect(res.statusCode, res.body).toBe(201);
      sent++;
    }
    c.ws.resume();
    await c.until(() => c.closed !== null, 5_000);
    expect(c.closed!.code).toBe(1006);
    expect(sent).toBeLessThan(400);
    expect(t.services.realtime.count(schema)).toBe(1);
    // The reading client got every one of them.
    await calm.until(() => calm.types().filter((type) => type === 'note.created').length === sent, 10_000);
    calm.close();
  });
});

describe('two instances without Redis', () => {
  let one: TestApp;
  let two: TestApp;
  beforeAll(async () => {
    one = await createTestApp({ events: { pollMs: 100 } });
    two = await createTestApp({ database: one.db, events: { pollMs: 100 } });
    await seedTenant(one, 'outa');
    await seedTenant(one, 'outb');
  });
  afterAll(async () => {
    await two?.close();
    await one?.close();
  });

  it("reads the outbox: a change on one instance reaches the other's sockets, in order", async () => {
    const base = await listen(two);
    const token = (await login(one.app, 'outa', 'admin@outa.example')).access_token;
    const c = await Client.open(`${base}/outa/realtime`, bearer(token));
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await one.app.inject({ method: 'POST', url: '/api/v1/tenants/outa/users', headers: bearer(token), payload: { email: `u${i}@outa.example`, password: 'A fine password 123!' } });
        expect(res.statusCode).toBe(201);
        ids.push((res.json() as { id: string }).id);
      }),
    );
    await c.until(() => ids.every((id) => c.events().some((m) => m.data?.id === id)), 5_000);
    const created = c.events().filter((m) => m.type === 'user.created');
    expect(new Set(created.map((m) => m.id)).size).toBe(created.length);
    c.close();
  });
});

describeWithRedis('two instances with Redis', () => {
  let one: TestApp;
  let two: TestApp;
  const redis = redisCaches();
  beforeAll(async () => {
    if (!inject('redisUrl')) return;
    const prefix = `realtime-${randomUUID()}:`;
    // Only the first instance dispatches; the second hears its events through Redis.
    one = await createTestApp({ cache: await redis.connect(prefix), events: { dispatch: true, pollMs: 5_000 }, realtime: { feed: 'pubsub' } });
    two = await createTestApp({ cache: await redis.connect(prefix), database: one.db, realtime: { feed: 'pubsub' } });
    await seedTenant(one, 'reda');
    await seedTenant(one, 'redb');
  });
  afterAll(async () => {
    await two?.close();
    await one?.close();
    await redis.close();
  });

  it("fans every event out to the other instance's sockets, and a revocation there closes them", async () => {
    const base = await listen(two);
    const admin = (await login(one.app, 'reda', 'admin@reda.example')).access_token;
    const other = (await login(one.app, 'redb', 'admin@redb.example')).access_token;
    const a = await Client.open(`${base}/reda/realtime`, bearer(admin));
    const b = await Client.open(`${base}/redb/realtime`, bearer(other));
    const res = await one.app.inject({ method: 'POST', url: '/api/v1/tenants/reda/users', headers: bearer(admin), payload: { email: 'fan@reda.example', password: 'A fine password 123!' } });
    const id = (res.json() as { id: string }).id;
    const started = Date.now();
    await a.until(() => a.events().some((m) => m.data?.id === id), 2_000);
    expect(Date.now() - started).toBeLessThan(1_000);
    // b's tenant saw only its own events (its admin's sign-in), nothing of reda's.
    expect(b.events().every((m) => m.tenant_slug === 'redb' && m.data?.id !== id)).toBe(true);

    const logout = await one.app.inject({ method: 'POST', url: '/api/v1/tenants/redb/auth/logout', headers: bearer(other) });
    expect(logout.statusCode).toBe(204);
    await b.until(() => b.closed !== null, 1_000);
    expect(b.closed!.code).toBe(4401);
    a.close();
  });
});
