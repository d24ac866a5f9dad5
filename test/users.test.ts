import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { RenderedUsers } from '../src/users/rendered.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

const t = useTenants(['ua', 'ub']);
let viewer: string;
let manager: string;

beforeAll(async () => {
  await seedUser(t, 'ua', { email: 'viewer@ua.example', roles: ['viewer'] });
  await seedUser(t, 'ua', { email: 'manager@ua.example', roles: ['manager'] });
  viewer = (await login(t.app, 'ua', 'viewer@ua.example')).access_token;
  manager = (await login(t.app, 'ua', 'manager@ua.example')).access_token;
});

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, token: string, payload?: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url: `/api/v1/tenants/${url}`, headers: { ...bearer(token), ...headers }, ...(payload ? { payload } : {}) });

async function createUser(token: string, body: object, slug = 'ua') {
  const res = await call('POST', `${slug}/users`, token, body);
  if (res.statusCode !== 201) throw new Error(`${res.statusCode} ${res.body}`);
  return res.json();
}

describe('POST users', () => {
  it('creates a user with a password and the default role, with ETag, Location and an audit row', async () => {
    const res = await call('POST', 'ua/users', t.tokens.ua, { email: 'New.Person@ua.example', password: 'a fine long password', first_name: 'New' });
    expect(res.statusCode).toBe(201);
    const user = res.json();
    expect(user).toMatchObject({ email: 'New.Person@ua.example', first_name: 'New', status: 'active', roles: ['user'], is_email_verified: false });
    expect(user).not.toHaveProperty('password_hash');
    expect(res.headers.etag).toBe('"1"');
    expect(res.headers.location).toBe(`/api/v1/tenants/ua/users/${user.id}`);
    const audit = await db('ua').selectFrom('audit_logs').select(['action', 'after', 'actor_user_id']).where('entity_id', '=', user.id).execute();
    expect(audit).toEqual([{ action: 'users.create', actor_user_id: t.admins.ua.id, after: expect.objectContaining({ email: 'New.Person@ua.example', roles: ['user'] }) }]);
    await login(t.app, 'ua', 'new.person@ua.example', 'a fine long password');
  });

  it('invites a user without a password: status invited, a set-password link that activates the account', async () => {
    const user = await createUser(t.tokens.ua, { email: 'invitee@ua.example', roles: ['viewer'] });
    expect(user).toMatchObject({ status: 'invited', roles: ['viewer'] });
    const mail = t.mailer.sent.at(-1)!;
    expect(mail.to).toBe('invitee@ua.example');
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1]!;
    const set = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ua/auth/password-reset/confirm', payload: { token, new_password: 'my chosen passphrase' } });
    expect(set.statusCode).toBe(204);
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/ua/me', headers: bearer((await login(t.app, 'ua', 'invitee@ua.example', 'my chosen passphrase')).access_token) });
    expect(me.json()).toMatchObject({ status: 'active', is_email_verified: true });
  });

  it('refuses duplicates (409), bad input (400) and protected fields, creating nothing', async () => {
    const count = async () => Number((await db('ua').selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await count();
    expect((await call('POST', 'ua/users', t.tokens.ua, { email: 'VIEWER@ua.example' })).statusCode).toBe(409);
    for (const [payload, field] of [
      [{ email: 'not an email' }, 'email'],
      [{ email: 'x@ua.example', password: 'short' }, 'password'],
      [{ email: 'x@ua.example', roles: ['wizard'] }, 'roles'],
      [{ email: 'x@ua.example', status: 'superuser' }, 'status'],
      [{ email: 'x@ua.example', username: 'a b' }, 'username'],
      [{ email: 'x@ua.example', id: '00000000-0000-4000-8000-000000000000' }, 'id'],
      [{ email: 'x@ua.example', password_hash: 'x' }, 'password_hash'],
      [{ email: 'x@ua.example', is_email_verified: true }, 'is_email_verified'],
      [{ email: 'x@ua.example', version: 7 }, 'version'],
      [{ email: 'x@ua.example', tenant_slug: 'ub' }, 'tenant_slug'],
    ] as const) {
      const res = await call('POST', 'ua/users', t.tokens.ua, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect(await count()).toBe(before);
  });

  it('lets a manager create users and viewers but never an admin; a viewer creates nothing', async () => {
    expect((await call('POST', 'ua/users', manager, { email: 'by-manager@ua.example', roles: ['viewer'] })).statusCode).toBe(201);
    expect((await call('POST', 'ua/users', manager, { email: 'wannabe@ua.example', roles: ['admin'] })).statusCode).toBe(403);
    expect((await call('POST', 'ua/users', viewer, { email: 'by-viewer@ua.example' })).statusCode).toBe(403);
  });

  it('honours Idempotency-Key: a replay returns the same answer and one row exists; another body is 422', async () => {
    const headers = { 'idempotency-key': 'create-once-1' };
    const body = { email: 'once@ua.example', password: 'a fine long password' };
    const [a, b] = await Promise.all([call('POST', 'ua/users', t.tokens.ua, body, headers), call('POST', 'ua/users', t.tokens.ua, body, headers)]);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(b.json()).toEqual(a.json());
    const replay = await call('POST', 'ua/users', t.tokens.ua, body, headers);
    expect(replay.statusCode).toBe(201);
    expect(replay.json()).toEqual(a.json());
    expect(await db('ua').selectFrom('users').select('id').where('email', '=', 'once@ua.example').execute()).toHaveLength(1);
    expect((await call('POST', 'ua/users', t.tokens.ua, { ...body, first_name: 'Other' }, headers)).statusCode).toBe(422);
    // Keys are per caller: the same key from another user is a new request.
    const other = await call('POST', 'ua/users', manager, { email: 'twice@ua.example' }, headers);
    expect(other.statusCode).toBe(201);
  });
});

describe('GET users', () => {
  it('lists with pagination, search, filters and an allowlisted sort', async () => {
    const page = await call('GET', 'ua/users?page=1&page_size=2&sort=email', t.tokens.ua);
    expect(page.statusCode).toBe(200);
    const body = page.json();
    expect(body.items).toHaveLength(2);
    expect(body.total).toBeGreaterThan(4);
    expect(body.items[0].email <= body.items[1].email).toBe(true);
    const desc = (await call('GET', 'ua/users?sort=-email&page_size=100', t.tokens.ua)).json().items.map((u: { email: string }) => u.email);
    expect(desc).toEqual([...desc].sort().reverse());

    const search = (await call('GET', 'ua/users?search=VIEWER', t.tokens.ua)).json();
    expect(search.items.map((u: { email: string }) => u.email)).toEqual(['viewer@ua.example']);
    const byRole = (await call('GET', 'ua/users?role=manager', t.tokens.ua)).json();
    expect(byRole.items.map((u: { email: string }) => u.email)).toEqual(['manager@ua.example']);
    const invited = (await call('GET', 'ua/users?status=invited&page_size=100', t.tokens.ua)).json();
    expect(invited.items.every((u: { status: string }) => u.status === 'invited')).toBe(true);
    const future = (await call('GET', `ua/users?created_from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, t.tokens.ua)).json();
    expect(future).toMatchObject({ items: [], total: 0 });
  });

  it('treats SQL-looking input as text and refuses unknown sorts and oversized pages', async () => {
    for (const search of ["' OR 1=1 --", '%', '_', "'; DROP TABLE users; --"]) {
      const res = await call('GET', `ua/users?search=${encodeURIComponent(search)}`, t.tokens.ua);
      expect(res.statusCode).toBe(200);
      expect(res.json().total).toBe(0);
    }
    expect((await call('GET', 'ua/users?sort=password_hash', t.tokens.ua)).statusCode).toBe(400);
    expect((await call('GET', 'ua/users?page_size=101', t.tokens.ua)).statusCode).toBe(400);
    expect((await call('GET', 'ua/users?status=x', t.tokens.ua)).statusCode).toBe(400);
    expect((await call('GET', 'ua/users?team=not-a-uuid', t.tokens.ua)).statusCode).toBe(400);
    expect((await call('GET', 'ua/users?unknown=1', t.tokens.ua)).statusCode).toBe(400);
    expect(await db('ua').selectFrom('users').select('id').limit(1).execute()).toHaveLength(1);
  });

  it('writes each listed user exactly as GET users/{id} does (JSON built by PostgreSQL), roles, odd text and timestamps included', async () => {
    const odd = await createUser(t.tokens.ua, {
      email: 'odd.text@ua.example',
      first_name: 'Quote " back\\slash \u00e9\u4e2d\ud83d\ude00',
      last_name: 'Tab\tNew\nline\u0001\u001f\u007f\u2028',
      roles: ['manager', 'viewer'],
      password: 'a fine long password',
    });
    await login(t.app, 'ua', 'odd.text@ua.example', 'a fine long password');
    const res = await call('GET', 'ua/users?search=odd.text', t.tokens.ua);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const single = await call('GET', `ua/users/${odd.id}`, t.tokens.ua);
    const listed = res.json().items[0];
    expect(listed.roles).toEqual(['manager', 'viewer']);
    expect(listed.last_login_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // Byte for byte: the listed object is the text the single read serializes.
    expect(res.body).toContain(single.body);
    expect(res.body).toBe(JSON.stringify(res.json()));
    // Every user of a full page, in both tenants.
    for (const [slug, token] of [['ua', t.tokens.ua], ['ub', t.tokens.ub]] as const) {
      const page = (await call('GET', `${slug}/users?page_size=100&sort=-last_login_at`, token)).json();
      for (const user of page.items) expect(user).toEqual((await call('GET', `${slug}/users/${user.id}`, token)).json());
      expect(page.total).toBe(page.items.length);
    }
  });

  it('shows every change in the next list: user rows (SQL by hand too), role assignments, roles, deletions (renderings are reused only for unchanged rows)', async () => {
    const listed = async (search: string) => (await call('GET', `ua/users?search=${search}&sort=email`, t.tokens.ua)).json().items as { id: string; first_name: string | null; roles: string[] }[];
    const user = await createUser(t.tokens.ua, { email: 'rendered.one@ua.example', first_name: 'One', roles: ['viewer'] });
    await createUser(t.tokens.ua, { email: 'rendered.two@ua.example', first_name: 'Two', roles: ['viewer'] });
    expect((await listed('rendered.')).map((u) => u.first_name)).toEqual(['One', 'Two']);
    expect((await listed('rendered.')).map((u) => u.first_name)).toEqual(['One', 'Two']);

    // SQL run by hand, bumping neither version nor updated_at.
    await sql`UPDATE tenant_ua.users SET first_name = 'Changed by hand' WHERE id = ${user.id}`.execute(t.db.database.db);
    expect((await listed('rendered.'))[0]).toMatchObject({ first_name: 'Changed by hand', roles: ['viewer'] });

    // Roles given through the API; a role renamed changes every holder's rendering, and
    // reprioritized, their order.
    const role = await call('POST', 'ua/roles', t.tokens.ua, { name: 'Auditor', permissions: ['users.read'], priority: 5 });
    expect(role.statusCode).toBe(201);
    expect((await call('PUT', `ua/users/${user.id}/roles`, t.tokens.ua, { roles: ['viewer', 'Auditor'] })).statusCode).toBe(200);
    expect((await listed('rendered.'))[0]!.roles).toEqual(['viewer', 'Auditor']);
    expect((await call('PATCH', `ua/roles/${role.json().id}`, t.tokens.ua, { name: 'Inspector', priority: 1000 })).statusCode).toBe(200);
    expect((await listed('rendered.'))[0]!.roles).toEqual(['Inspector', 'viewer']);
    expect((await call('GET', `ua/users/${user.id}`, t.tokens.ua)).json().roles).toEqual(['Inspector', 'viewer']);

    expect((await call('DELETE', `ua/users/${user.id}`, t.tokens.ua)).statusCode).toBe(204);
    expect((await listed('rendered.')).map((u) => u.first_name)).toEqual(['Two']);
  });

  it('keeps renderings for a bounded time and number (SQL by hand on role assignments shows within the time)', () => {
    const renderings = new RenderedUsers(2, 60_000);
    renderings.set('tenant_a', 'u1', 's1', '{"a":1}', 1_000);
    expect(renderings.get('tenant_a', 'u1', 's1', 60_999)).toBe('{"a":1}');
    expect(renderings.get('tenant_a', 'u1', 's1', 61_000)).toBeUndefined();
    expect(renderings.get('tenant_a', 'u1', 's2', 2_000)).toBeUndefined();
    expect(renderings.get('tenant_b', 'u1', 's1', 2_000)).toBeUndefined();
    renderings.set('tenant_a', 'u2', 's1', '{"a":2}', 1_000);
    renderings.set('tenant_a', 'u1', 's3', '{"a":3}', 1_000);
    renderings.set('tenant_a', 'u3', 's1', '{"a":4}', 1_000);
    expect(renderings.size).toBe(2);
    expect(renderings.get('tenant_a', 'u2', 's1', 2_000)).toBeUndefined();
    expect(renderings.get('tenant_a', 'u1', 's3', 2_000)).toBe('{"a":3}');
  });

  it('never shows one tenant the rendering of another tenant user, even one with the same id', async () => {
    const user = await createUser(t.tokens.ua, { email: 'twin@ua.example', first_name: 'Alpha twin' });
    expect((await call('GET', 'ua/users?search=twin', t.tokens.ua)).json().items[0].first_name).toBe('Alpha twin');
    // Ids are per tenant table: another tenant can hold the same one.
    await sql`INSERT INTO tenant_ub.users (id, email, first_name, status) VALUES (${user.id}, 'twin@ub.example', 'Beta twin', 'active')`.execute(t.db.database.db);
    for (let i = 0; i < 2; i++) {
      expect((await call('GET', 'ub/users?search=twin', t.tokens.ub)).json().items).toEqual([expect.objectContaining({ id: user.id, email: 'twin@ub.example', first_name: 'Beta twin' })]);
      expect((await call('GET', 'ua/users?search=twin', t.tokens.ua)).json().items).toEqual([expect.objectContaining({ id: user.id, email: 'twin@ua.example', first_name: 'Alpha twin' })]);
    }
    await sql`DELETE FROM tenant_ub.users WHERE id = ${user.id}`.execute(t.db.database.db);
  });

  it('keeps tenants apart: another tenant lists only its own users and gets 404 for ours', async () => {
    const listB = (await call('GET', 'ub/users?page_size=100', t.tokens.ub)).json();
    expect(listB.items.map((u: { email: string }) => u.email)).toEqual([t.admins.ub.email]);
    expect((await call('GET', `ub/users/${t.admins.ua.id}`, t.tokens.ub)).statusCode).toBe(404);
    expect((await call('PUT', `ub/users/${t.admins.ua.id}`, t.tokens.ub, { first_name: 'Hijack' })).statusCode).toBe(404);
    expect((await call('DELETE', `ub/users/${t.admins.ua.id}`, t.tokens.ub)).statusCode).toBe(404);
    expect((await call('GET', `ua/users/${t.admins.ub.id}`, t.tokens.ua)).statusCode).toBe(404);
  });
});

describe('PUT/PATCH/DELETE users/{id}', () => {
  it('updates partially with If-Match; a stale ETag is 412', async () => {
    const user = await createUser(t.tokens.ua, { email: 'etag@ua.example', password: 'a fine long password' });
    const got = await call('GET', `ua/users/${user.id}`, t.tokens.ua);
    expect(got.headers.etag).toBe('"1"');
    // The version is the ETag, not a field of the body.
    expect(got.json()).toMatchObject({ id: user.id, email: 'etag@ua.example' });
    expect(got.json()).not.toHaveProperty('version');
    const put = await call('PUT', `ua/users/${user.id}`, t.tokens.ua, { first_name: 'Eve' }, { 'if-match': '"1"' });
    expect(put.statusCode).toBe(200);
    expect(put.headers.etag).toBe('"2"');
    expect(put.json()).toMatchObject({ first_name: 'Eve', email: 'etag@ua.example' });
    expect((await call('PATCH', `ua/users/${user.id}`, t.tokens.ua, { last_name: 'Stale' }, { 'if-match': '"1"' })).statusCode).toBe(412);
    expect((await call('PATCH', `ua/users/${user.id}`, t.tokens.ua, { last_name: 'Fresh' }, { 'if-match': '"2"' })).json().last_name).toBe('Fresh');
    const audit = await db('ua').selectFrom('audit_logs').select(['before', 'after']).where('entity_id', '=', user.id).where('action', '=', 'users.update').orderBy('created_at').execute();
    expect(audit[0]).toMatchObject({ before: expect.objectContaining({ first_name: null }), after: expect.objectContaining({ first_name: 'Eve' }) });
  });

  it('of two concurrent updates with the same ETag, exactly one succeeds and the other gets 412', async () => {
    const user = await createUser(t.tokens.ua, { email: 'race@ua.example' });
    const results = await Promise.all(['A', 'B'].map((name) => call('PUT', `ua/users/${user.id}`, t.tokens.ua, { first_name: name }, { 'if-match': '"1"' })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 412]);
  });

  it('refuses protected fields and a viewer', async () => {
    const user = await createUser(t.tokens.ua, { email: 'protected@ua.example' });
    for (const payload of [{ id: user.id }, { password_hash: 'x' }, { is_email_verified: true }, { version: 9 }, { roles: ['admin'] }]) {
      expect((await call('PUT', `ua/users/${user.id}`, t.tokens.ua, payload)).statusCode).toBe(400);
    }
    expect((await call('PUT', `ua/users/${user.id}`, viewer, { first_name: 'No' })).statusCode).toBe(403);
    expect((await call('DELETE', `ua/users/${user.id}`, viewer)).statusCode).toBe(403);
  });

  it('suspending a user ends its access at once', async () => {
    const user = await createUser(t.tokens.ua, { email: 'suspend@ua.example', password: 'a fine long password' });
    const token = (await login(t.app, 'ua', user.email, 'a fine long password')).access_token;
    expect((await call('GET', 'ua/me', token)).statusCode).toBe(200);
    expect((await call('PATCH', `ua/users/${user.id}`, t.tokens.ua, { status: 'suspended' })).statusCode).toBe(200);
    expect((await call('GET', 'ua/me', token)).statusCode).toBe(401);
  });

  it('deletes softly: sessions and API keys end, the email is free again, restore brings the user back', async () => {
    const user = await createUser(t.tokens.ua, { email: 'leaver@ua.example', password: 'a fine long password', roles: ['viewer'] });
    const session = await login(t.app, 'ua', user.email, 'a fine long password');
    const key = (await call('POST', 'ua/me/api-keys', session.access_token, { name: 'k', permissions: ['users.read'] })).json().key;
    expect((await call('DELETE', `ua/users/${user.id}`, t.tokens.ua, undefined, { 'if-match': '"1"' })).statusCode).toBe(204);
    expect((await call('GET', `ua/users/${user.id}`, t.tokens.ua)).statusCode).toBe(404);
    expect((await call('GET', 'ua/me', session.access_token)).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/ua/users', headers: { 'x-api-key': key } })).statusCode).toBe(401);
    expect((await call('DELETE', `ua/users/${user.id}`, t.tokens.ua)).statusCode).toBe(404);
    const audit = await db('ua').selectFrom('audit_logs').select('action').where('entity_id', '=', user.id).execute();
    expect(audit.map((a) => a.action)).toContain('users.delete');

    const restored = await call('POST', `ua/users/${user.id}/restore`, t.tokens.ua);
    expect(restored.statusCode).toBe(200);
    expect(restored.json()).toMatchObject({ id: user.id, email: 'leaver@ua.example' });
    expect((await call('POST', `ua/users/${user.id}/restore`, t.tokens.ua)).statusCode).toBe(404);

    await call('DELETE', `ua/users/${user.id}`, t.tokens.ua);
    const again = await createUser(t.tokens.ua, { email: 'leaver@ua.example' });
    expect(again.id).not.toBe(user.id);
    expect((await call('POST', `ua/users/${user.id}/restore`, t.tokens.ua)).statusCode).toBe(409);
  });

  it('never removes the last active admin, even under concurrent requests', async () => {
    const second = await createUser(t.tokens.ua, { email: 'admin2@ua.example', password: 'a fine long password', roles: ['admin'] });
    const secondToken = (await login(t.app, 'ua', second.email, 'a fine long password')).access_token;
    // Each admin tries to take the other down at the same moment: one must stay.
    const results = await Promise.all([
      call('PATCH', `ua/users/${second.id}`, t.tokens.ua, { status: 'suspended' }),
      call('PATCH', `ua/users/${t.admins.ua.id}`, secondToken, { status: 'suspended' }),
    ]);
    // The one that waits finds its actor suspended by the other (401), or, had it not been, the last admin (409).
    const [won, lost] = results.map((r) => r.statusCode).sort();
    expect(won).toBe(200);
    expect([401, 409]).toContain(lost);
    const activeAdmins = await db('ua')
      .selectFrom('users as u')
      .innerJoin('user_roles as ur', 'ur.user_id', 'u.id')
      .innerJoin('roles as r', 'r.id', 'ur.role_id')
      .select('u.id')
      .where('r.name', '=', 'admin')
      .where('u.status', '=', 'active')
      .where('u.deleted_at', 'is', null)
      .execute();
    expect(activeAdmins).toHaveLength(1);
    // Put things back for the other tests.
    await db('ua').updateTable('users').set({ status: 'active' }).where('id', 'in', [second.id, t.admins.ua.id]).execute();
    await t.services.changes.committed(await t.services.directory.resolve('ua'), [{ kind: 'user', userId: t.admins.ua.id }]);
    await t.services.changes.committed(await t.services.directory.resolve('ua'), [{ kind: 'user', userId: second.id }]);
  });
});

describe('overrides and sessions of a user', () => {
  it('sets, lists and removes overrides; only for permissions you hold; not your own', async () => {
    const user = await createUser(t.tokens.ua, { email: 'override@ua.example', roles: ['viewer'] });
    const put = await call('PUT', `ua/users/${user.id}/permissions/notes.create`, t.tokens.ua, { effect: 'allow' });
    expect(put.statusCode).toBe(200);
    const explained = (await call('GET', `ua/users/${user.id}/permissions`, t.tokens.ua)).json();
    expect(explained.overrides).toEqual([{ permission: 'notes.create', effect: 'allow', expires_at: null, active: true }]);
    expect(explained.effective).toContain('notes.create');
    expect((await call('PUT', `ua/users/${user.id}/permissions/users.delete`, manager, { effect: 'allow' })).statusCode).toBe(403);
    expect((await call('PUT', `ua/users/${t.admins.ua.id}/permissions/users.read`, t.tokens.ua, { effect: 'deny' })).statusCode).toBe(403);
    expect((await call('PUT', `ua/users/${user.id}/permissions/bogus.perm`, t.tokens.ua, { effect: 'allow' })).statusCode).toBe(400);
    expect((await call('PUT', `ua/users/${user.id}/permissions/notes.read`, t.tokens.ua, { effect: 'maybe' })).statusCode).toBe(400);
    expect((await call('PUT', `ua/users/${user.id}/permissions/notes.read`, t.tokens.ua, { effect: 'deny', expires_at: '2000-01-01T00:00:00Z' })).statusCode).toBe(400);
    expect((await call('DELETE', `ua/users/${user.id}/permissions/notes.create`, t.tokens.ua)).statusCode).toBe(204);
    expect((await call('DELETE', `ua/users/${user.id}/permissions/notes.create`, t.tokens.ua)).statusCode).toBe(404);
  });

  it('puts the permissions in force into each new access token: an override given shows at once, one expired is gone', async () => {
    const user = await createUser(t.tokens.ua, { email: 'tokened@ua.example', password: 'a fine long password', roles: ['viewer'] });
    const permissionsOf = (token: string) => decodeJwt(token).permissions as string[];
    const refresh = async (refreshToken: string) => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ua/auth/refresh', payload: { refresh_token: refreshToken } });
      expect(res.statusCode).toBe(200);
      return res.json() as { access_token: string; refresh_token: string };
    };
    let pair: { access_token: string; refresh_token: string } = await login(t.app, 'ua', user.email, 'a fine long password');
    expect(permissionsOf(pair.access_token)).not.toContain('notes.create');
    const expiresAt = new Date(Date.now() + 1_500).toISOString();
    expect((await call('PUT', `ua/users/${user.id}/permissions/notes.create`, t.tokens.ua, { effect: 'allow', expires_at: expiresAt })).statusCode).toBe(200);
    expect((await call('PUT', `ua/users/${user.id}/permissions/notes.update`, t.tokens.ua, { effect: 'allow' })).statusCode).toBe(200);
    for (let i = 0; i < 2; i++) {
      pair = await refresh(pair.refresh_token);
      expect(permissionsOf(pair.access_token)).toEqual(expect.arrayContaining(['notes.create', 'notes.update', 'users.read']));
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(expiresAt) - Date.now()) + 50));
    pair = await refresh(pair.refresh_token);
    expect(permissionsOf(pair.access_token)).not.toContain('notes.create');
    expect(permissionsOf(pair.access_token)).toEqual(expect.arrayContaining(['notes.update', 'users.read']));
  });

  it('lists and ends a user\'s sessions (needs sessions.* permissions)', async () => {
    const user = await createUser(t.tokens.ua, { email: 'sessioned@ua.example', password: 'a fine long password' });
    const a = await login(t.app, 'ua', user.email, 'a fine long password');
    const b = await login(t.app, 'ua', user.email, 'a fine long password');
    const list = await call('GET', `ua/users/${user.id}/sessions`, t.tokens.ua);
    expect(list.json().items.map((s: { id: string }) => s.id).sort()).toEqual([a.sid, b.sid].sort());
    expect((await call('GET', `ua/users/${user.id}/sessions`, viewer)).statusCode).toBe(403);
    expect((await call('DELETE', `ua/users/${user.id}/sessions/${a.sid}`, t.tokens.ua)).statusCode).toBe(204);
    expect((await call('GET', 'ua/me', a.access_token)).statusCode).toBe(401);
    expect((await call('DELETE', `ua/users/${user.id}/sessions`, t.tokens.ua)).json()).toEqual({ revoked: 1 });
    expect((await call('GET', 'ua/me', b.access_token)).statusCode).toBe(401);
  });
});

describe('atomicity', () => {
  it('a create that fails after its audit row was written leaves neither behind', async () => {
    // Inject a failure at the last step of an invitation (its set-password token).
    await sql`CREATE FUNCTION tenant_ua.fail_invite() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`.execute(t.db.database.db);
    await sql`CREATE TRIGGER fail_invite BEFORE INSERT ON tenant_ua.password_reset_tokens FOR EACH ROW EXECUTE FUNCTION tenant_ua.fail_invite()`.execute(t.db.database.db);
    try {
      const res = await call('POST', 'ua/users', t.tokens.ua, { email: 'doomed@ua.example' });
      expect(res.statusCode).toBe(500);
      expect(res.json().detail).not.toMatch(/injected/);
    } finally {
      await sql`DROP TRIGGER fail_invite ON tenant_ua.password_reset_tokens`.execute(t.db.database.db);
    }
    expect(await db('ua').selectFrom('users').select('id').where('email', '=', 'doomed@ua.example').execute()).toEqual([]);
    const audit = await db('ua').selectFrom('audit_logs').select('id').where(sql`after->>'email'`, '=', 'doomed@ua.example').execute();
    expect(audit).toEqual([]);
  });
});

