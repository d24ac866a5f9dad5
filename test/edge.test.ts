import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { buildApp, type AppDeps } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { tenantDb } from '../src/db/database.js';
import { databaseCheck } from '../src/health/routes.js';
import { DEFAULT_EDGE, nestedDeeperThan, type EdgeOptions } from '../src/http/edge.js';
import { createTestApp } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { bearer } from './support/tenants.js';

/* SPEC §10 "Edge": security headers, proxies, timeouts, oversized and deeply nested bodies. */

const t = useTenants(['ha', 'hb']);

/** Another app over the same services and database, with its own edge settings. */
async function appWith(options: Partial<Pick<AppDeps, 'publicUrl'>> & { edge?: Partial<EdgeOptions> } = {}): Promise<FastifyInstance> {
  return buildApp({
    keys: t.keys,
    tenants: t.tenants,
    lifecycle: t.lifecycle,
    services: t.services,
    readiness: { database: databaseCheck(t.db.database.db) },
    logger: false,
    publicUrl: options.publicUrl,
    edge: { ...DEFAULT_EDGE, ...options.edge },
  });
}

async function listening(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as AddressInfo).port;
}

describe('security headers', () => {
  it('every answer carries nosniff and no-referrer; API answers (tokens, secrets, errors) are no-store', async () => {
    const answers = [
      await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ha/auth/login', payload: { email: 'admin@ha.example', password: 'correct horse battery staple' } }),
      await t.app.inject({ method: 'POST', url: '/api/v1/tenants/hb/auth/login', payload: { email: 'admin@hb.example', password: 'wrong password' } }),
      await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ha/me/api-keys', headers: bearer(t.tokens.ha), payload: { name: 'ci', permissions: ['users.read'] } }),
      await t.app.inject({ method: 'GET', url: '/api/v1/tenants/hb/users', headers: bearer(t.tokens.hb) }),
      await t.app.inject({ method: 'GET', url: '/api/v1/tenants', headers: bearer(await t.systemToken()) }),
      await t.app.inject({ method: 'GET', url: '/api/v1/tenants/ha/nothing-here' }),
      await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ha/users', headers: { ...bearer(t.tokens.ha), 'content-type': 'application/json' }, payload: '{"email":' }),
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([200, 401, 201, 200, 200, 404, 400]);
    expect(answers[0]!.json().access_token).toEqual(expect.any(String));
    for (const a of answers) {
      expect(a.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' });
      expect(a.headers['strict-transport-security']).toBeUndefined();
    }
    // Outside the API: the same two headers, caches left to the route.
    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
    expect(health.headers['cache-control']).toBeUndefined();
  });

  it('adds HSTS when PUBLIC_URL is https', async () => {
    const app = await appWith({ publicUrl: 'https://id.example.com' });
    try {
      for (const url of ['/health', '/api/v1/tenants/ha/users', '/api/v1/tenants/ha/auth/login']) {
        const res = await app.inject({ method: url.endsWith('login') ? 'POST' : 'GET', url, payload: url.endsWith('login') ? { email: 'x@y.z', password: 'p' } : undefined });
        expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
      }
    } finally {
      await app.close();
    }
  });
});

describe('TRUST_PROXY', () => {
  /** The address the audit row of a settings change records for a request from `remoteAddress` with X-Forwarded-For. */
  async function auditedIp(app: FastifyInstance, remoteAddress: string, forwardedFor: string): Promise<string | null> {
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/tenants/ha/settings/locale.default',
      headers: { ...bearer(t.tokens.ha), 'x-forwarded-for': forwardedFor },
      remoteAddress,
      payload: { value: 'en' },
    });
    expect(res.statusCode).toBe(200);
    const row = await tenantDb(t.db.database.db, 'tenant_ha').selectFrom('audit_logs').select('ip_address').where('action', '=', 'settings.update').orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow();
    return row.ip_address as string | null;
  }

  it('is off by default: X-Forwarded-For is ignored and the peer is the client', async () => {
    expect(await auditedIp(t.app, '10.0.0.5', '203.0.113.9')).toBe('10.0.0.5');
  });

  it('believes X-Forwarded-For from a trusted proxy address or CIDR only', async () => {
    const app = await appWith({ edge: { trustProxy: ['10.0.0.0/8', '192.0.2.1'] } });
    try {
      expect(await auditedIp(app, '10.1.2.3', '203.0.113.9')).toBe('203.0.113.9');
      expect(await auditedIp(app, '192.0.2.1', '198.51.100.7, 203.0.113.10')).toBe('203.0.113.10');
      // An untrusted peer's header is not believed.
      expect(await auditedIp(app, '198.51.100.20', '203.0.113.9')).toBe('198.51.100.20');
    } finally {
      await app.close();
    }
  });

  it('with a hop count, takes the address that many hops back', async () => {
    const app = await appWith({ edge: { trustProxy: 2 } });
    try {
      expect(await auditedIp(app, '10.0.0.1', '203.0.113.1, 198.51.100.2, 192.0.2.3')).toBe('198.51.100.2');
    } finally {
      await app.close();
    }
  });

  it('gives each client behind the proxy its own rate-limit bucket', async () => {
    const limited = await createTestApp({ authRateLimitPerMinute: 2, database: t.db });
    const app = await buildApp({ keys: limited.keys, tenants: limited.tenants, lifecycle: limited.lifecycle, services: limited.services, readiness: {}, logger: false, edge: { ...DEFAULT_EDGE, trustProxy: ['10.0.0.0/8'] } });
    try {
      const attempt = (forwardedFor: string) =>
        app.inject({ method: 'POST', url: '/api/v1/tenants/hb/auth/login', remoteAddress: '10.0.0.2', headers: { 'x-forwarded-for': forwardedFor }, payload: { email: 'nobody@hb.example', password: 'x' } });
      expect((await Promise.all([attempt('203.0.113.1'), attempt('203.0.113.1'), attempt('203.0.113.1')])).map((r) => r.statusCode).sort()).toEqual([401, 401, 429]);
      expect((await attempt('203.0.113.2')).statusCode).toBe(401);
    } finally {
      await app.close();
      await limited.app.close();
    }
  });

  it('is parsed from the environment: false, true, a hop count, or addresses and CIDRs', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,fd00::/8' }).trustProxy).toEqual(['10.0.0.0/8', '192.0.2.1', 'fd00::/8']);
    for (const bad of ['yes', '10.0.0.0/33', 'proxy.local', '1.2.3']) expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/^Invalid configuration: TRUST_PROXY /);
  });
});

describe('timeouts', () => {
  it('have sane defaults and are configurable', () => {
    expect(loadConfig({}).http).toEqual({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5000 });
    expect(loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '60000', HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000' }).http).toEqual({ requestTimeoutMs: 60_000, headersTimeoutMs: 5000, keepAliveTimeoutMs: 65_000 });
    expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '0' })).toThrow(/HTTP_REQUEST_TIMEOUT_MS/);
    expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '6000' })).toThrow(/^Invalid configuration: HTTP_HEADERS_TIMEOUT_MS must not exceed/);
  });

  /** Opens a connection, runs `talk` on it; resolves with what the server sent and the ms until it closed it. */
  function closedAfter(port: number, talk: (write: (text: string) => void) => void): Promise<{ ms: number; received: string }> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = connect(port, '127.0.0.1');
      let received = '';
      const timers: NodeJS.Timeout[] = [];
      socket.on('data', (d) => (received += d.toString()));
      socket.on('error', () => {});
      socket.on('close', () => {
        for (const timer of timers) clearTimeout(timer);
        resolve({ ms: Date.now() - started, received });
      });
      socket.on('connect', () =>
        talk((text) => {
          if (!socket.destroyed) socket.write(text);
        }),
      );
      timers.push(setTimeout(() => reject(new Error(`still open after 8 s; received: ${received}`)), 8000));
    });
  }

  it('close a connection that trickles its headers, one that trickles its body, and an idle keep-alive one', { timeout: 30_000 }, async () => {
    const app = await appWith({ edge: { headersTimeoutMs: 1000, requestTimeoutMs: 1500, keepAliveTimeoutMs: 300 } });
    try {
      const port = await listening(app);
      const intervals: NodeJS.Timeout[] = [];
      const every = (fn: () => void) => intervals.push(setInterval(fn, 100));
      try {
        const headers = await closedAfter(port, (write) => {
          write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
          every(() => write('X-Slow: 1\r\n'));
        });
        expect(headers.ms).toBeLessThan(4000);
        expect(headers.received).toMatch(/^HTTP\/1\.1 408/);

        const body = await closedAfter(port, (write) => {
          write(`POST /api/v1/tenants/ha/notes HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t.tokens.ha}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"title":"`);
          every(() => write('a'));
        });
        expect(body.ms).toBeLessThan(5000);
        expect(body.received).not.toMatch(/^HTTP\/1\.1 2/);

        const idle = await closedAfter(port, (write) => write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'));
        expect(idle.received).toMatch(/^HTTP\/1\.1 200/);
        expect(idle.ms).toBeLessThan(3000);
      } finally {
        for (const i of intervals) clearInterval(i);
      }
    } finally {
      await app.close();
    }
  });
});

describe('request bodies', () => {
  /**
   * Sends `body` to `path` over a real connection and reads the answer only once all of it is
   * sent (as curl does): a server that closes early resets the connection and the answer is lost.
   */
  function send(port: number, path: string, body: Buffer, token: string): Promise<{ status: number; type: string; json: Record<string, unknown> } | { error: string; received: string }> {
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      let error = '';
      socket.pause();
      socket.on('data', (d) => (received += d.toString()));
      socket.on('error', (e: NodeJS.ErrnoException) => (error ||= e.code ?? e.message));
      const finish = () => {
        const match = /^HTTP\/1\.1 (\d+)[^]*?\r\ncontent-type: ([^\r]*)[^]*?\r\n\r\n([^]*)$/i.exec(received);
        if (error || !match) return resolve({ error: error || 'no answer', received: received.slice(0, 200) });
        resolve({ status: Number(match[1]), type: match[2]!, json: JSON.parse(match[3]!) as Record<string, unknown> });
        socket.destroy();
      };
      socket.on('close', finish);
      socket.on('connect', () => {
        socket.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        socket.write(body, () => socket.resume());
      });
    });
  }

  it('an oversized body gets its 413 problem+json every time, not a reset', { timeout: 60_000 }, async () => {
    const app = await appWith();
    try {
      const port = await listening(app);
      const body = (mb: number) => Buffer.from(JSON.stringify({ email: 'big@ha.example', first_name: 'x'.repeat(mb * 1024 * 1024) }));
      const bodies = [body(3), body(10)];
      for (let i = 0; i < 10; i++) {
        const res = await send(port, i % 2 ? '/api/v1/tenants/hb/users' : '/api/v1/tenants/ha/users', bodies[Math.floor(i / 5)]!, i % 2 ? t.tokens.hb : t.tokens.ha);
        expect(res, `attempt ${i}`).toMatchObject({ status: 413, type: expect.stringContaining('application/problem+json'), json: { status: 413, detail: 'the request body is larger than the limit of 1,048,576 bytes' } });
      }
      // The server is fine afterwards, and a body within the limit is read as ever.
      const ok = await send(port, '/api/v1/tenants/ha/notes', Buffer.from(JSON.stringify({ title: 'after', content: 'x'.repeat(1000) })), t.tokens.ha);
      expect(ok).toMatchObject({ status: 201 });
    } finally {
      await app.close();
    }
  });

  const deepArray = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
  const deepObject = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

  it.each([
    ['a settings value of 200,000 nested arrays', 'ha/settings/branding', 'PUT', `{"value":${deepArray(200_000)}}`],
    ['a settings value of 150,000 nested objects', 'hb/settings/branding', 'PUT', `{"value":${deepObject(150_000)}}`],
    ['a user of 100 nested arrays', 'ha/users', 'POST', `{"email":"deep@ha.example","first_name":${deepArray(100)}}`],
    ['a user of 100 nested objects', 'hb/users', 'POST', `{"email":"deep@hb.example","metadata":${deepObject(100)}}`],
  ])('refuses %s with 400 naming the body', async (_what, url, method, payload) => {
    const res = await t.app.inject({ method: method as 'PUT', url: `/api/v1/tenants/${url}`, headers: { ...bearer(url.startsWith('ha') ? t.tokens.ha : t.tokens.hb), 'content-type': 'application/json' }, payload });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json().errors).toEqual([{ field: 'body', reason: 'is nested deeper than 64 levels' }]);
  });

  it('takes JSON nested within the bound, brackets inside strings not counted', async () => {
    const value = JSON.parse(deepObject(60)) as object;
    const res = await t.app.inject({ method: 'PUT', url: '/api/v1/tenants/ha/settings/branding', headers: bearer(t.tokens.ha), payload: { value: { ...value, product_name: '[[[[{{{{'.repeat(100) } } });
    expect(res.statusCode, res.body).toBe(200);
    expect(nestedDeeperThan('"\\"[[["', 1)).toBe(false);
    expect(nestedDeeperThan('[[1]]', 1)).toBe(true);
    // Prototype poisoning is still refused, as by Fastify's own parser.
    const poisoned = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ha/notes', headers: { ...bearer(t.tokens.ha), 'content-type': 'application/json' }, payload: '{"title":"p","__proto__":{"x":1}}' });
    expect(poisoned.statusCode).toBe(400);
  });
});
