import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, tenantDb } from '../src/db/database.js';
import { tenantColumns } from '../src/db/columns.js';
import { buildTestApp, createTestApp, signWith, type TestApp } from './support/app.js';

let t: TestApp;
let token: string;
const ALL_TABLES = Object.keys(tenantColumns).sort();

beforeAll(async () => {
  t = await createTestApp();
  token = await t.systemToken();
});
afterAll(async () => t?.close());

const auth = () => ({ authorization: `Bearer ${token}` });

async function createTenant(body: unknown) {
  return t.app.inject({ method: 'POST', url: '/api/v1/tenants', headers: auth(), payload: body as object });
}

async function counts() {
  const tenants = await t.db.database.db.withSchema('shared').selectFrom('tenants').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  const schemas = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace`.execute(t.db.database.db);
  return { tenants: Number(tenants.n), schemas: schemas.rows[0]!.n };
}

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json: () => Record<string, unknown> }, status: number) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:system-service:problem:/), title: expect.any(String), detail: expect.any(String), request_id: expect.any(String) });
  expect(body.request_id).toBe(res.headers['x-request-id']);
  return body;
}

describe('POST /api/v1/tenants', () => {
  it('registers and provisions a tenant with its first admin', async () => {
    const res = await createTenant({ slug: 'acme-corp', name: 'Acme Corp', admin: { email: 'Admin@Acme.example', password: 'a long enough password', first_name: 'Ada' } });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe(`/api/v1/tenants/${res.json().id}`);
    const body = res.json();
    expect(body).toMatchObject({ slug: 'acme_corp', name: 'Acme Corp', schema_name: 'tenant_acme_corp', status: 'ready', schema_version: t.schemas.latestVersion, admin_user_id: expect.any(String) });
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);

    const db = tenantDb(t.db.database.db, 'tenant_acme_corp');
    const user = await db.selectFrom('users').select(['id', 'email', 'password_hash', 'first_name', 'status']).executeTakeFirstOrThrow();
    expect(user).toMatchObject({ id: body.admin_user_id, email: 'Admin@Acme.example', first_name: 'Ada', status: 'active' });
    expect(user.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    const roles = await db.selectFrom('user_roles').innerJoin('roles', 'roles.id', 'user_roles.role_id').select('roles.name').where('user_roles.user_id', '=', user.id).execute();
    expect(roles).toEqual([{ name: 'admin' }]);
    const audit = await db.selectFrom('audit_logs').select(['action', 'entity_id', 'after']).execute();
    expect(audit).toEqual([{ action: 'users.create', entity_id: user.id, after: expect.not.objectContaining({ password_hash: expect.anything() }) }]);
    expect(JSON.stringify(audit)).not.toContain('argon2');
  });

  it('answers 409 for an existing slug, however it is spelled', async () => {
    await createTenant({ slug: 'dupe' });
    const before = await counts();
    expectProblem(await createTenant({ slug: 'dupe' }), 409);
    expect(await counts()).toEqual(before);
  });

  it('keeps two tenants apart: same admin email, separate users', async () => {
    const a = await createTenant({ slug: 'iso_a', admin: { email: 'same@example.com', password: 'password of tenant a' } });
    const b = await createTenant({ slug: 'iso_b', admin: { email: 'same@example.com', password: 'password of tenant b' } });
    expect(a.statusCode).toBe(201);
    expect(b.statusCode).toBe(201);
    const userA = await tenantDb(t.db.database.db, 'tenant_iso_a').selectFrom('users').select(['id', 'password_hash']).execute();
    const userB = await tenantDb(t.db.database.db, 'tenant_iso_b').selectFrom('users').select(['id', 'password_hash']).execute();
    expect(userA).toHaveLength(1);
    expect(userB).toHaveLength(1);
    expect(userA[0]!.id).toBe(a.json().admin_user_id);
    expect(userB[0]!.id).toBe(b.json().admin_user_id);
    expect(userA[0]!.password_hash).not.toBe(userB[0]!.password_hash);
  });

  it.each([
    ["x'; DROP SCHEMA shared CASCADE; --"],
    ['acme"corp'],
    ['acme corp'],
    ['Acme'],
    ['acmé'],
    ['ab\u0000c'],
    ['a'],
    ['1acme'],
    ['_acme'],
    ['a'.repeat(42)],
    ['template'],
    [''],
  ])('refuses the slug %j with 400 and creates nothing', async (slug) => {
    const before = await counts();
    const body = expectProblem(await createTenant({ slug }), 400);
    expect(body.errors).toEqual([expect.objectContaining({ field: 'slug' })]);
    expect(await counts()).toEqual(before);
  });

  it.each([
    [{}, 'slug'],
    [{ slug: 42 }, 'slug'],
    [{ slug: 'ok_slug', extra: true }, 'extra'],
    [{ slug: 'ok_slug', admin: { email: 'not-an-email', password: 'a long enough password' } }, 'admin.email'],
    [{ slug: 'ok_slug', admin: { email: 'a@b.example', password: 'short' } }, 'admin.password'],
    [{ slug: 'ok_slug', admin: { email: 'a@b.example' } }, 'admin.password'],
    [{ slug: 'ok_slug', name: '   ' }, 'name'],
  ])('refuses the body %j naming the field %s, and creates nothing', async (payload, field) => {
    const before = await counts();
    const body = expectProblem(await createTenant(payload), 400);
    expect((body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
    expect(await counts()).toEqual(before);
  });

  it('reports every invalid field at once', async () => {
    const body = expectProblem(await createTenant({ slug: 5, name: 7, extra: true }), 400);
    expect((body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['extra', 'name', 'slug']);
  });

  it('refuses a body that is not JSON with 400', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/tenants', headers: { ...auth(), 'content-type': 'application/json' }, payload: '{"slug":' });
    expectProblem(res, 400);
  });
});

describe('GET /api/v1/tenants and /{tenant_id}', () => {
  it('lists tenants with pagination', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/tenants?page=1&page_size=2', headers: auth() });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ page: 1, page_size: 2, total: expect.any(Number) });
    expect(body.items).toHaveLength(2);
    expect(body.total).toBeGreaterThanOrEqual(4);
    expectProblem(await t.app.inject({ method: 'GET', url: '/api/v1/tenants?page_size=101', headers: auth() }), 400);
    expectProblem(await t.app.inject({ method: 'GET', url: '/api/v1/tenants?page=0', headers: auth() }), 400);
  });

  it('searches tenants by slug or name and filters by status, counting only the matches', async () => {
    await createTenant({ slug: 'zebra_one', name: 'Striped Horses Ltd' });
    await createTenant({ slug: 'zebra_two', name: 'Other' });
    const zebra2 = await t.app.inject({ method: 'PATCH', url: '/api/v1/tenants/zebra_two', headers: auth(), payload: { status: 'suspended' } });
    expect(zebra2.statusCode).toBe(200);
    const list = async (query: string) => (await t.app.inject({ method: 'GET', url: `/api/v1/tenants?${query}`, headers: auth() })).json();
    const bySlug = await list('search=ZEBRA');
    expect(bySlug.items.map((x: { slug: string }) => x.slug)).toEqual(['zebra_one', 'zebra_two']);
    expect(bySlug.total).toBe(2);
    expect((await list('search=striped')).items.map((x: { slug: string }) => x.slug)).toEqual(['zebra_one']);
    expect(await list('search=zebra&status=suspended')).toMatchObject({ total: 1, items: [{ slug: 'zebra_two', tenant_status: 'suspended' }] });
    // LIKE wildcards are text, not patterns.
    expect((await list('search=%25')).total).toBe(0);
    expect((await list('search=zebra&page_size=1&page=2')).items.map((x: { slug: string }) => x.slug)).toEqual(['zebra_two']);
    const bad = expectProblem(await t.app.inject({ method: 'GET', url: '/api/v1/tenants?status=gone', headers: auth() }), 400);
    expect(JSON.stringify(bad)).toContain('status');
  });

  it('gets one tenant; 404 for an unknown id, 400 for a malformed one', async () => {
    const created = (await createTenant({ slug: 'getme' })).json();
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/${created.id}`, headers: auth() });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: created.id, slug: 'getme', status: 'ready' });
    expectProblem(await t.app.inject({ method: 'GET', url: '/api/v1/tenants/00000000-0000-4000-8000-000000000000', headers: auth() }), 404);
    expectProblem(await t.app.inject({ method: 'GET', url: "/api/v1/tenants/1'%20OR%201=1", headers: auth() }), 400);
  });
});

describe('POST /api/v1/tenants/{tenant_id}/initialize', () => {
  it('is idempotent: the second call creates no table', async () => {
    const created = (await createTenant({ slug: 'init_twice' })).json();
    const first = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${created.id}/initialize`, headers: auth(), payload: {} });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ tenant_id: created.id, schema_name: 'tenant_init_twice', status: 'ready', schema_version: t.schemas.latestVersion, tables: ALL_TABLES, created_tables: [] });
  });

  it('initializes a tenant registered elsewhere (tenant-service), with a first admin', async () => {
    const row = await t.db.database.db.withSchema('shared').insertInto('tenants').values({ slug: 'external', name: 'External', schema_name: 'tenant_external' }).returning('id').executeTakeFirstOrThrow();
    const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${row.id}/initialize`, headers: auth(), payload: { admin: { email: 'root@external.example', password: 'external admin password' } } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ready', tables: ALL_TABLES, created_tables: ALL_TABLES, admin_user_id: expect.any(String) });
    // Again with the same admin: nothing new, no password reset.
    const again = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${row.id}/initialize`, headers: auth(), payload: { admin: { email: 'root@external.example', password: 'another password entirely' } } });
    expect(again.json()).toMatchObject({ created_tables: [], admin_user_id: null });
    expect(await tenantDb(t.db.database.db, 'tenant_external').selectFrom('users').select('id').execute()).toHaveLength(1);
  });

  it('answers 404 for an unknown tenant and creates nothing', async () => {
    const before = await counts();
    expectProblem(await t.app.inject({ method: 'POST', url: '/api/v1/tenants/00000000-0000-4000-8000-000000000000/initialize', headers: auth(), payload: {} }), 404);
    expect(await counts()).toEqual(before);
  });
});

describe('system token checks', () => {
  const list = (authorization?: string) => t.app.inject({ method: 'GET', url: '/api/v1/tenants', headers: authorization ? { authorization } : {} });

  it('401 without a token, with a malformed header, or with a bad token', async () => {
    const res = await list();
    expectProblem(res, 401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expectProblem(await list('Basic abc'), 401);
    expectProblem(await list('Bearer not.a.jwt'), 401);
  });

  it('401 for an expired token, a token without exp, another secret, or a tampered payload', async () => {
    expectProblem(await list(`Bearer ${await signWith({ type: 'system' }, { exp: Math.floor(Date.now() / 1000) - 10 })}`), 401);
    expectProblem(await list(`Bearer ${await signWith({ type: 'system' }, { exp: null })}`), 401);
    expectProblem(await list(`Bearer ${await signWith({ type: 'system' }, { secret: 'another-secret-that-is-also-long-enough-0000' })}`), 401);
    const [h, , s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ type: 'system', sub: 'attacker', exp: 9_999_999_999 })).toString('base64url');
    expectProblem(await list(`Bearer ${h}.${forged}.${s}`), 401);
  });

  it('401 for alg "none" and for an algorithm other than the configured one', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ type: 'system', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
    expectProblem(await list(`Bearer ${header}.${payload}.`), 401);
    expectProblem(await list(`Bearer ${await signWith({ type: 'system' }, { alg: 'HS512' })}`), 401);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rs = await new SignJWT({ type: 'system' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
    expectProblem(await list(`Bearer ${rs}`), 401);
  });

  it('403 for a valid token that is not a system token', async () => {
    const tenantToken = await signWith({ type: 'tenant', tenant_slug: 'acme_corp', sub: '00000000-0000-4000-8000-000000000000' });
    expectProblem(await list(`Bearer ${tenantToken}`), 403);
  });
});

describe('health, readiness, docs and errors', () => {
  it('serves /health and /ready', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/health' })).json()).toEqual({ status: 'ok' });
    const ready = await t.app.inject({ method: 'GET', url: '/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', checks: { database: 'ok' } });
  });

  it('serves an OpenAPI document generated from the routes, and the docs UI', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/tenants', '/api/v1/tenants/{tenant_id}', '/api/v1/tenants/{tenant_id}/initialize', '/health', '/ready']));
    const create = doc.paths['/api/v1/tenants'].post;
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '403', '409', '503']));
    expect(Object.keys(create.responses['409'].content)).toEqual(['application/problem+json']);
    expect(create.requestBody.content['application/json'].schema.properties).toHaveProperty('slug');
    // Every operation: documented errors as problem+json, security where it is enforced, examples.
    const publicTenantRoutes = ['/auth/login', '/auth/refresh', '/auth/password-reset/request', '/auth/password-reset/confirm', '/auth/verify-email', '/auth/session', '/auth/session/refresh', '/auth/mfa/totp', '/auth/mfa/totp/confirm', '/auth/mfa/verify', '/auth/mfa/passkey-options', '/auth/mfa/passkeys/registration-options', '/auth/mfa/passkeys', '/auth/session/mfa/totp/confirm', '/auth/session/mfa/verify', '/auth/session/mfa/passkeys', '/auth/passkey/options', '/auth/passkey/login', '/auth/session/passkey'].map((p) => `post ${p}`);
    let operations = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: unknown; example?: unknown }> }>; security?: unknown; requestBody?: { content: Record<string, { example?: unknown }> } }>>)) {
      for (const [method, op] of Object.entries(item)) {
        operations++;
        const where = `${method.toUpperCase()} ${path}`;
        if (path.startsWith('/api/')) {
          expect(Object.keys(op.responses), where).toContain('503');
          for (const [status, response] of Object.entries(op.responses)) {
            if (Number(status) >= 400) expect(Object.keys(response.content ?? {}), `${where} ${status}`).toEqual(['application/problem+json']);
            else if (response.content?.['application/json']) expect(response.content['application/json'].example, `${where} ${status} example`).toBeDefined();
          }
          if (op.requestBody?.content['application/json']) expect(op.requestBody.content['application/json'].example, `${where} body example`).toBeDefined();
        }
        if (path.startsWith('/api/v1/tenants/{tenant_slug}/') && !publicTenantRoutes.some((p) => p.startsWith(`${method} `) && path.endsWith(p.slice(method.length + 1)))) {
          // The WebSocket route also takes a ticket in its query (browsers cannot send headers).
          expect(op.security, where).toEqual(path.endsWith('/realtime') ? [{ bearer: [] }, { apiKey: [] }, { ticket: [] }] : [{ bearer: [] }, { apiKey: [] }]);
        }
      }
    }
    expect(operations).toBeGreaterThan(40);
    const ui = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
  });

  it('answers unknown routes with a 404 problem and echoes a given request id', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': 'req-123' } });
    const body = expectProblem(res, 404);
    expect(body.request_id).toBe('req-123');
  });
});

describe('readiness with the database down', () => {
  it('answers 503 naming the database check, and platform routes answer 503, not 500', async () => {
    // Nothing listens on port 9: every connection attempt is refused.
    const unreachable = createDatabase({ url: 'postgresql://nobody:nothing@127.0.0.1:9/none', max: 1, connectionTimeoutMs: 500 });
    const { app } = await buildTestApp(unreachable.db);
    try {
      const ready = await app.inject({ method: 'GET', url: '/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ status: 503, checks: { database: expect.not.stringMatching(/^ok$/) }, detail: expect.stringMatching(/^database: /) });
      for (const request of [
        { method: 'GET' as const, url: '/api/v1/tenants' },
        { method: 'POST' as const, url: '/api/v1/tenants', payload: { slug: 'while_down' } },
      ]) {
        const res = await app.inject({ ...request, headers: auth() });
        expectProblem(res, 503);
      }
    } finally {
      await app.close();
      await unreachable.close();
    }
  });
});
