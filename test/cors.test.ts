import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS } from '../src/http/cors.js';
import { useTenants } from './support/fixture.js';
import { bearer } from './support/tenants.js';

/** CORS_ORIGINS: a tenant's own front end calls the API from a browser; other origins get no CORS headers. Two tenants. */
const ALLOWED = 'https://app.example.com';
const t = useTenants(['ka', 'kb'], { corsOrigins: [ALLOWED, 'http://localhost:5173'] });

const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((h) => h.startsWith('access-control-'));
const preflight = (origin: string, url = '/api/v1/tenants/ka/users') =>
  t.app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type, if-match, idempotency-key' } });

describe('CORS', () => {
  it('answers a preflight from an allowed origin with the methods and headers the API uses', async () => {
    const res = await preflight(ALLOWED);
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(res.headers['access-control-allow-methods']).split(', ')).toEqual(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
    expect(String(res.headers['access-control-allow-headers']).split(', ')).toEqual([...CORS_ALLOWED_HEADERS]);
    expect(res.headers['access-control-max-age']).toBe('600');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers.vary).toMatch(/\bOrigin\b/);
    // Every tenant's routes, and the platform's.
    expect((await preflight('http://localhost:5173', '/api/v1/tenants/kb/roles')).headers['access-control-allow-origin']).toBe('http://localhost:5173');
  });

  it('gives a refused origin no CORS headers: its preflight is a 404, its request answered without them', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com', 'null']) {
      const res = await preflight(origin);
      expect(res.statusCode, origin).toBe(404);
      expect(corsHeaders(res.headers), origin).toEqual([]);
      const get = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/ka/users', headers: { ...bearer(t.tokens.ka), origin } });
      expect(get.statusCode).toBe(200);
      expect(corsHeaders(get.headers), origin).toEqual([]);
      expect(get.headers.vary).toMatch(/\bOrigin\b/);
    }
  });

  it('lets an allowed origin read an answer and the headers clients need (ETag, Location, X-Request-Id, ...)', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/kb/users', headers: { ...bearer(t.tokens.kb), origin: ALLOWED } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(res.headers['access-control-expose-headers']).split(', ')).toEqual([...CORS_EXPOSED_HEADERS]);
    expect(res.headers.vary).toMatch(/\bOrigin\b/);
    // A refusal is readable too: the front end shows the problem.
    const refused = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/kb/users', headers: { ...bearer(t.tokens.ka), origin: ALLOWED } });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['access-control-allow-origin']).toBe(ALLOWED);
  });

  it('works over real HTTP', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    expect(address).toContain(String(port));
    const call = (method: string, origin: string) =>
      new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method, path: '/api/v1/locales', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'accept-language' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
        });
        req.on('error', reject);
        req.end();
      });
    const allowed = await call('OPTIONS', ALLOWED);
    expect(allowed.status).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(allowed.headers['content-length']).toBe('0');
    const refused = await call('OPTIONS', 'https://evil.example');
    expect(refused.status).toBe(404);
    expect(corsHeaders(refused.headers)).toEqual([]);
    const simple = await call('GET', ALLOWED);
    expect(simple.status).toBe(200);
    expect(simple.headers['access-control-allow-origin']).toBe(ALLOWED);
  });
});
