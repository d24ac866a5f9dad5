import { describe, expect, it } from 'vitest';
import { issueSystemToken } from '../src/auth/system-token.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/** What a newcomer hit in the first release, each fixed and held here. Two tenants. */
const t = useTenants(['na', 'nb']);

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, token: string, payload?: unknown) =>
  t.app.inject({ method, url: `/api/v1/tenants/${url}`, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });

describe('newcomer fixes', () => {
  it("shows a setting's key in its audit rows", async () => {
    expect((await call('PUT', 'na/settings/password.min_length', t.tokens.na, { value: 14 })).statusCode).toBe(200);
    const rows = (await call('GET', 'na/audit-logs?action=settings.update', t.tokens.na)).json().items as { before: { key: string }; after: { key: string; value: unknown } }[];
    expect(rows[0]!.before.key).toBe('password.min_length');
    expect(rows[0]!.after).toMatchObject({ key: 'password.min_length', value: 14 });
  });

  it('finds a tenant of the platform API by its slug as well as its id', async () => {
    const system = await t.systemToken();
    const bySlug = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/na', headers: bearer(system) });
    expect(bySlug.statusCode).toBe(200);
    const byId = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/${bySlug.json().id}`, headers: bearer(system) });
    expect(byId.json().slug).toBe('na');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/zz_missing', headers: bearer(system) })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/Not%20a%20slug!', headers: bearer(system) })).statusCode).toBe(400);
  });

  it('says a system token is the wrong kind on a tenant route', async () => {
    const res = await call('GET', 'na/users', await issueSystemToken(t.keys, { subject: 'ops', ttlSeconds: 60 }));
    expect(res.statusCode).toBe(403);
    expect(res.json().detail).toMatch(/system token/);
  });

  it('shows a lockout and lets an administrator lift it, audited and within the out-rank rule', async () => {
    expect((await call('PUT', 'na/settings/lockout.max_failures', t.tokens.na, { value: 2 })).statusCode).toBe(200);
    const user = await seedUser(t, 'na', { email: 'locked@na.example', roles: ['user'] });
    for (let i = 0; i < 2; i++) await t.app.inject({ method: 'POST', url: '/api/v1/tenants/na/auth/login', payload: { email: user.email, password: 'wrong password here' } });
    const state = await call('GET', `na/users/${user.id}/lock`, t.tokens.na);
    expect(state.json()).toMatchObject({ locked: true, lockout_count: 1 });
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/na/auth/login', payload: { email: user.email, password: PASSWORD } })).statusCode).toBe(401);
    // A viewer cannot lift it; the other tenant cannot see it.
    const viewer = await seedUser(t, 'na', { email: 'viewer-lock@na.example', roles: ['viewer'] });
    expect((await call('POST', `na/users/${user.id}/unlock`, (await login(t.app, 'na', viewer.email)).access_token)).statusCode).toBe(403);
    expect((await call('POST', `nb/users/${user.id}/unlock`, t.tokens.nb)).statusCode).toBe(404);
    const unlocked = await call('POST', `na/users/${user.id}/unlock`, t.tokens.na);
    expect(unlocked.json()).toEqual({ locked: false, locked_until: null, failed_login_count: 0, lockout_count: 0 });
    await login(t.app, 'na', user.email);
    expect((await call('GET', `na/audit-logs?action=users.unlock&entity_id=${user.id}`, t.tokens.na)).json().total).toBe(1);
  });

  it('validates /me like an administrator\'s update: the same messages', async () => {
    await seedUser(t, 'na', { email: 'taken@na.example', username: 'taken_name' });
    const me = await seedUser(t, 'na', { email: 'self@na.example', roles: ['user'] });
    const token = (await login(t.app, 'na', me.email)).access_token;
    const bad = await call('PUT', 'na/me', token, { username: '!' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].field).toBe('username');
    const taken = await call('PUT', 'na/me', token, { username: 'taken_name' });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().detail).toBe('a user with this username already exists');
    expect((await call('PUT', 'na/me', token, { first_name: 'Self' })).json().first_name).toBe('Self');
  });

  it('no longer lets the user role create or update channel configs', async () => {
    const user = await seedUser(t, 'nb', { email: 'plain@nb.example', roles: ['user'] });
    const token = (await login(t.app, 'nb', user.email)).access_token;
    expect((await call('POST', 'nb/channel-configs', token, { channel: 'email', name: 'Mine', config: { host: 'smtp.example' } })).statusCode).toBe(403);
    expect((await call('GET', 'nb/channel-configs', token)).statusCode).toBe(200);
    const role = ((await call('GET', 'nb/roles?search=user', t.tokens.nb)).json().items as { name: string; permissions: string[] }[]).find((r) => r.name === 'user')!;
    expect(role.permissions).not.toContain('channel_configs.create');
    expect(role.permissions).toContain('notes.create');
  });

  it('resets a lost password for an operator, ending the sessions', async () => {
    const tenant = await t.services.directory.resolve('nb');
    const before = await login(t.app, 'nb', 'admin@nb.example');
    const operator = { actorUserId: null, actorType: 'system' as const, sessionId: null, ip: null, userAgent: 'test', requestId: null };
    const password = await t.services.auth.resetPasswordByOperator(tenant, 'ADMIN@nb.example', operator);
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect((await call('GET', 'nb/me', before.access_token)).statusCode).toBe(401);
    await login(t.app, 'nb', 'admin@nb.example', password);
    await expect(t.services.auth.resetPasswordByOperator(tenant, 'nobody@nb.example', operator)).rejects.toThrow(/not found/);
    t.tokens.nb = (await login(t.app, 'nb', 'admin@nb.example', password)).access_token;
  });
});

describe('the user list rendered by PostgreSQL', () => {
  it('has exactly the fields of the User response schema, in its order, and never a hash', async () => {
    const { UserSchema } = await import('../src/users/view.js');
    const list = await call('GET', 'na/users?page_size=100', t.tokens.na);
    const text = list.body;
    expect(text).not.toMatch(/password|_hash|locked_until|version/);
    for (const item of list.json().items as Record<string, unknown>[]) expect(Object.keys(item)).toEqual(Object.keys(UserSchema.properties));
    // The single read goes through the response schema and agrees with the list.
    const first = (list.json().items as { id: string }[])[0]!;
    const one = (await call('GET', `na/users/${first.id}`, t.tokens.na)).json();
    expect(Object.keys(one).sort()).toEqual(Object.keys(UserSchema.properties).sort());
    expect(one).toEqual((list.json().items as { id: string }[]).find((u) => u.id === first.id));
  });
});

describe('mails', () => {
  it("name the tenant by its branding's product name, else by its registered name, never by its slug", async () => {
    expect((await call('PUT', 'na/settings/branding', t.tokens.na, { value: { product_name: 'Acme Portal', logo_url: null, primary_color: null } })).statusCode).toBe(200);
    // Tenant nb's registered name differs from its slug (as tenant-service would set it).
    await t.db.database.db.withSchema('shared').updateTable('tenants').set({ name: 'Northbound Ltd' }).where('slug', '=', 'nb').execute();
    await t.services.directory.invalidate('nb');
    expect((await call('POST', 'na/users', t.tokens.na, { email: 'invitee-branded@na.example' })).statusCode).toBe(201);
    expect((await call('POST', 'nb/users', t.tokens.nb, { email: 'invitee-plain@nb.example' })).statusCode).toBe(201);
    const subjectTo = (to: string) => t.mailer.sent.find((m) => m.to === to)?.subject;
    expect(subjectTo('invitee-branded@na.example')).toBe('You are invited to Acme Portal');
    expect(subjectTo('invitee-plain@nb.example')).toBe('You are invited to Northbound Ltd');
  });
});
