import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/error-codes.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/** Every problem carries a stable `code`; a refused input names every failing field. Two tenants. */
const t = useTenants(['ca', 'cb']);
let viewer: string;

beforeAll(async () => {
  await seedUser(t, 'ca', { email: 'viewer@ca.example', roles: ['viewer'], username: 'viewer1' });
  await seedUser(t, 'ca', { email: 'other@ca.example', roles: ['user'], username: 'other1' });
  // The same email in the other tenant is no conflict there.
  await seedUser(t, 'cb', { email: 'other@ca.example', roles: ['user'] });
  viewer = (await login(t.app, 'ca', 'viewer@ca.example')).access_token;
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, token: string | null, payload?: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({
    method,
    url: url.startsWith('/') ? url : `/api/v1/tenants/${url}`,
    headers: { ...(token ? bearer(token) : {}), ...headers },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });

const fields = (body: { errors?: { field: string }[] }) => (body.errors ?? []).map((e) => e.field).sort();

describe('error codes', () => {
  it('answers the same code for the same conflict through the admin route and /me', async () => {
    const users = (await call('GET', 'ca/users?search=viewer', t.tokens.ca)).json().items as { id: string }[];
    const patched = await call('PATCH', `ca/users/${users[0]!.id}`, t.tokens.ca, { email: 'OTHER@ca.example' });
    expect(patched.statusCode).toBe(409);
    expect(patched.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(patched.json()).toMatchObject({ type: 'urn:system-service:problem:conflict', status: 409, code: 'user.email_taken' });
    const me = await call('PUT', 'ca/me', viewer, { username: 'other1' });
    expect(me.statusCode).toBe(409);
    expect(me.json().code).toBe('user.username_taken');
    const viaAdmin = await call('PATCH', `ca/users/${users[0]!.id}`, t.tokens.ca, { username: 'Other1' });
    expect(viaAdmin.json()).toMatchObject({ status: 409, code: 'user.username_taken', detail: me.json().detail });
  });

  it('names authentication and permission refusals', async () => {
    expect((await call('POST', 'ca/auth/login', null, { email: 'admin@ca.example', password: 'wrong password 1' })).json()).toMatchObject({ status: 401, code: 'auth.invalid_credentials' });
    expect((await call('GET', 'ca/users', null)).json()).toMatchObject({ status: 401, code: 'auth.credentials_required' });
    expect((await call('GET', 'ca/users', 'not.a.token')).json()).toMatchObject({ status: 401, code: 'auth.invalid_token' });
    expect((await call('GET', 'cb/users', t.tokens.ca)).json()).toMatchObject({ status: 403, code: 'auth.wrong_tenant' });
    expect((await call('POST', 'ca/roles', viewer, { name: 'x' })).json()).toMatchObject({ status: 403, code: 'permission.denied' });
    expect((await call('POST', 'ca/auth/refresh', null, { refresh_token: 'rt_nothing.atall' })).json()).toMatchObject({ status: 401, code: 'auth.invalid_refresh_token' });
  });

  it('names what was not found, what is fixed, and a stale version', async () => {
    expect((await call('GET', 'ca/users/00000000-0000-4000-8000-000000000000', t.tokens.ca)).json()).toMatchObject({ status: 404, code: 'user.not_found' });
    expect((await call('GET', 'ca/no-such-route', t.tokens.ca)).json()).toMatchObject({ status: 404, code: 'route.not_found' });
    const roles = (await call('GET', 'ca/roles', t.tokens.ca)).json().items as { id: string; name: string }[];
    const adminRole = roles.find((r) => r.name === 'admin')!;
    expect((await call('DELETE', `ca/roles/${adminRole.id}`, t.tokens.ca)).json()).toMatchObject({ status: 409, code: 'role.system_immutable' });
    const stale = await call('PATCH', `ca/roles/${roles.find((r) => r.name === 'viewer')!.id}`, t.tokens.ca, { description: 'x' }, { 'if-match': '"999"' });
    expect(stale.json()).toMatchObject({ status: 412, code: 'request.version_mismatch' });
    const system = await t.systemToken();
    expect((await call('POST', '/api/v1/tenants', system, { slug: 'cb' })).json()).toMatchObject({ status: 409, code: 'tenant.slug_taken' });
  });

  it('reports every failing field of a user at once, and creates nothing', async () => {
    const res = await call('POST', 'ca/users', t.tokens.ca, { email: 'not-an-email', username: '-x', password: 'short', timezone: 'Mars/Base' });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('request.invalid');
    expect(fields(res.json())).toEqual(['email', 'password', 'timezone', 'username']);
    expect((await call('GET', 'ca/users?search=not-an-email', t.tokens.ca)).json().total).toBe(0);
    // The schema's own checks report every field too.
    const schema = await call('POST', 'ca/users', t.tokens.ca, { first_name: 5, status: 'sleeping' });
    expect(schema.json().code).toBe('request.invalid');
    expect(fields(schema.json())).toEqual(['email', 'first_name', 'status']);
  });

  it('reports every failing field of a role, an API key and a tenant', async () => {
    const role = await call('POST', 'ca/roles', t.tokens.ca, { name: '9 bad', permissions: ['users.read', 'nope.read'], denied_permissions: ['users.read'] });
    expect(role.statusCode).toBe(400);
    expect(fields(role.json())).toEqual(['denied_permissions', 'name', 'permissions']);
    const key = await call('POST', 'ca/me/api-keys', t.tokens.ca, { name: ' ', permissions: ['nope.read'], expires_at: '2001-01-01T00:00:00Z' });
    expect(key.statusCode).toBe(400);
    expect(fields(key.json())).toEqual(['expires_at', 'name', 'permissions']);
    const system = await t.systemToken();
    const before = (await call('GET', '/api/v1/tenants', system)).json();
    const tenant = await call('POST', '/api/v1/tenants', system, { slug: 'Bad Slug', name: ' ', admin: { email: 'nope', password: 'short' } });
    expect(tenant.statusCode).toBe(400);
    expect(fields(tenant.json())).toEqual(['admin.email', 'admin.password', 'name', 'slug']);
    expect((await call('GET', '/api/v1/tenants', system)).json()).toEqual(before);
  });

  it('documents the code in the OpenAPI Problem schema', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.components.schemas.Problem.properties.code.type).toBe('string');
  });

  it('registers only codes the service can answer', () => {
    // Every code of the table appears in the sources (as itself, or as the entity of DomainError.notFound).
    const root = path.resolve(import.meta.dirname, '../src');
    const text = (readdirSync(root, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && f !== 'error-codes.ts')
      .map((f) => readFileSync(path.join(root, f), 'utf8'))
      .join('\n');
    const notFound = new Set([...text.matchAll(/notFound\('([a-z_]+)'/g)].map((m) => `${m[1]}.not_found`));
    const unused = Object.keys(ERROR_CODES).filter((code) => !text.includes(`'${code}'`) && !notFound.has(code));
    expect(unused).toEqual([]);
  });
});
