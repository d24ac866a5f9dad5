import { describe, expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/** What a second attacker's read of the authorization found, each held here. Two tenants. */
const t = useTenants(['ora', 'orb']);

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, token: string, payload?: unknown) =>
  t.app.inject({ method, url: `/api/v1/tenants/ora/${url}`, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });

describe('the out-rank rule, read again', () => {
  it('judges a user create on the roles as they are once it holds the lock, not as read before', async () => {
    await seedUser(t, 'ora', { email: 'm1@ora.example', roles: ['manager'] });
    const manager = (await login(t.app, 'ora', 'm1@ora.example')).access_token;
    const role = await call('POST', 'roles', t.tokens.ora, { name: 'reporting', priority: 10, permissions: ['notes.read'] });
    expect(role.statusCode).toBe(201);
    // A role edit holds the tenant's lock (as PUT roles does) while the create arrives; it
    // widens the role to `*` and commits. The create must judge the role as it is then.
    const editor = await t.db.database.pool.connect();
    let create: ReturnType<typeof call> | undefined;
    try {
      await editor.query('BEGIN');
      await editor.query(`SELECT id FROM tenant_ora.permissions WHERE name = '*' FOR NO KEY UPDATE`);
      create = call('POST', 'users', manager, { email: 'mule@ora.example', password: 'pass-mule-123456', roles: ['reporting'] });
      let queued = 0;
      for (let i = 0; i < 500 && queued === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        // Any state: a statement sent in a pipeline may show its session as idle while it waits.
        const r = await editor.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`);
        queued = r.rows[0].n;
      }
      expect(queued).toBe(1);
      await editor.query(
        `INSERT INTO tenant_ora.role_permissions (role_id, permission_id, effect) SELECT $1, id, 'allow' FROM tenant_ora.permissions WHERE name = '*'`,
        [role.json().id],
      );
      await editor.query('COMMIT');
    } finally {
      editor.release();
    }
    const created = await create!;
    expect(created.statusCode).toBe(403);
    expect(created.json().code).toBe('permission.not_held');
    expect((await call('GET', 'users?search=mule', t.tokens.ora)).json().total).toBe(0);
  });

  it('does not let a permission lent until later be passed on for good', async () => {
    const hr = await call('POST', 'roles', t.tokens.ora, { name: 'hr', priority: 20, permissions: ['roles.read', 'roles.create', 'roles.update', 'users.read', 'users.create', 'users.update', 'permissions.read'] });
    expect(hr.statusCode).toBe(201);
    const h1 = await seedUser(t, 'ora', { email: 'h1@ora.example', roles: ['hr'] });
    const until = new Date(Date.now() + 3_600_000).toISOString();
    expect((await call('PUT', `users/${h1.id}/permissions/users.delete`, t.tokens.ora, { effect: 'allow', expires_at: until })).statusCode).toBe(200);
    const token = (await login(t.app, 'ora', 'h1@ora.example')).access_token;
    // h1 may use it while it lasts...
    const victim = await seedUser(t, 'ora', { email: 'gone@ora.example', roles: ['hr'] });
    expect((await call('DELETE', `users/${victim.id}`, token)).statusCode).toBe(204);
    // ...but not hand it out: not in a role, not to a user, not as a lasting override.
    const perm = await call('POST', 'roles', token, { name: 'perm', permissions: ['users.delete'] });
    expect(perm.statusCode).toBe(403);
    expect(perm.json()).toMatchObject({ code: 'permission.not_held', detail: expect.stringContaining('users.delete') });
    const other = await seedUser(t, 'ora', { email: 'h2@ora.example', roles: ['hr'] });
    expect((await call('PUT', `users/${other.id}/permissions/users.delete`, token, { effect: 'allow' })).statusCode).toBe(403);
  });

  it('ends the sessions of a suspended user: reactivation does not revive its tokens', async () => {
    const user = await seedUser(t, 'ora', { email: 'sus@ora.example', roles: ['viewer'] });
    const tokens = await login(t.app, 'ora', 'sus@ora.example');
    expect((await call('GET', 'me', tokens.access_token)).statusCode).toBe(200);
    expect((await call('PATCH', `users/${user.id}`, t.tokens.ora, { status: 'suspended' })).statusCode).toBe(200);
    expect((await call('PATCH', `users/${user.id}`, t.tokens.ora, { status: 'active' })).statusCode).toBe(200);
    expect((await call('GET', 'me', tokens.access_token)).statusCode).toBe(401);
    const refreshed = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ora/auth/refresh', payload: { refresh_token: tokens.refresh_token } });
    expect(refreshed.statusCode).toBe(401);
    expect((await login(t.app, 'ora', 'sus@ora.example', PASSWORD)).access_token).toBeTruthy();
  });

  it('voids reset links when a user is deleted: a restore does not revive them', async () => {
    const user = await seedUser(t, 'ora', { email: 'reset@ora.example', roles: ['viewer'] });
    const sent = t.mailer.sent.length;
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ora/auth/password-reset/request', payload: { email: 'reset@ora.example' } });
    for (let i = 0; i < 50 && t.mailer.sent.length === sent; i++) await new Promise((r) => setTimeout(r, 20));
    const link = /token=([A-Za-z0-9_-]+)/.exec(t.mailer.sent.at(-1)!.text)?.[1];
    expect(link).toBeTruthy();
    expect((await call('DELETE', `users/${user.id}`, t.tokens.ora)).statusCode).toBe(204);
    expect((await call('POST', `users/${user.id}/restore`, t.tokens.ora)).statusCode).toBe(200);
    const confirm = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ora/auth/password-reset/confirm', payload: { token: link, new_password: 'A brand new password 1!' } });
    expect(confirm.statusCode).toBe(400);
    expect(confirm.json().code).toBe('auth.invalid_link_token');
  });

  it('lets only a user who holds everything change how every user signs in', async () => {
    expect((await call('POST', 'roles', t.tokens.ora, { name: 'ops', priority: 30, permissions: ['settings.read', 'settings.update'] })).statusCode).toBe(201);
    await seedUser(t, 'ora', { email: 'ops@ora.example', roles: ['ops'] });
    const ops = (await login(t.app, 'ora', 'ops@ora.example')).access_token;
    for (const key of ['auth.require_email_verification', 'lockout.max_failures', 'session.idle_timeout_minutes', 'password.min_length']) {
      const value = key === 'auth.require_email_verification' ? true : 5;
      const res = await call('PUT', `settings/${key}`, ops, { value });
      expect(res.statusCode, key).toBe(403);
      expect(res.json().code, key).toBe('permission.outranked');
    }
    // Settings that bind no one's sign-in stay theirs to change.
    expect((await call('PUT', 'settings/locale.default', ops, { value: 'de' })).statusCode).toBe(200);
    expect((await call('PUT', 'settings/lockout.max_failures', t.tokens.ora, { value: 7 })).statusCode).toBe(200);
  });
});
