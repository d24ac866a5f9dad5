import { describe, expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedTenant, seedUser } from './support/tenants.js';

/**
 * SPEC section 10 against a real database: nobody changes a user who holds more than they do,
 * role edits are grants, the admin role is fixed, and some active user always holds everything.
 * Two tenants: what happens in one never shows in the other.
 */
const t = useTenants(['ra', 'rb']);

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, auth: string | { key: string }, payload?: unknown) =>
  t.app.inject({
    method,
    url: `/api/v1/tenants/${url}`,
    headers: typeof auth === 'string' ? bearer(auth) : { 'x-api-key': auth.key },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });

let n = 0;
/** A user of tenant `ra` with these roles, and a token of theirs. */
async function person(roles: string[], slug = 'ra') {
  const user = await seedUser(t, slug, { email: `p${++n}@${slug}.example`, roles });
  return { ...user, token: (await login(t.app, slug, user.email)).access_token };
}

const roleId = async (name: string, slug = 'ra') => ((await call('GET', `${slug}/roles?page_size=100`, slug === 'ra' ? t.tokens.ra : t.tokens.rb)).json().items as { id: string; name: string }[]).find((r) => r.name === name)!.id;
const userOf = async (id: string) => (await call('GET', `ra/users/${id}`, t.tokens.ra)).json();
const effective = async (id: string) => (await call('GET', `ra/users/${id}/permissions`, t.tokens.ra)).json().effective as string[];

describe('the out-rank rule', () => {
  it('refuses a manager every change to an administrator: email, status, overrides, roles, sessions', async () => {
    const manager = await person(['manager']);
    const target = await person(['admin']);
    const before = await userOf(target.id);

    const attempts = [
      await call('PATCH', `ra/users/${target.id}`, manager.token, { email: 'taken-over@ra.example' }),
      await call('PATCH', `ra/users/${target.id}`, manager.token, { status: 'suspended' }),
      await call('PATCH', `ra/users/${target.id}`, manager.token, { first_name: 'Mallory' }),
      await call('PUT', `ra/users/${target.id}/permissions/users.update`, manager.token, { effect: 'deny' }),
      await call('PUT', `ra/users/${target.id}/roles`, manager.token, { roles: ['admin', 'viewer'] }),
    ];
    for (const res of attempts) {
      expect(res.statusCode, res.body).toBe(403);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    expect(attempts[0]!.json().detail).toMatch(/holds .* which you do not hold/);
    expect(await userOf(target.id)).toEqual(before);
    expect(await effective(target.id)).toContain('users.delete');
    // The administrator still signs in with the old email and password.
    await login(t.app, 'ra', target.email, PASSWORD);
  });

  it('lets a manager change a user it out-ranks, and an equal', async () => {
    const manager = await person(['manager']);
    const user = await person(['user']);
    const peer = await person(['manager']);
    expect((await call('PATCH', `ra/users/${user.id}`, manager.token, { first_name: 'Ada' })).statusCode).toBe(200);
    expect((await call('PATCH', `ra/users/${peer.id}`, manager.token, { last_name: 'Peer' })).statusCode).toBe(200);
    expect((await call('PUT', `ra/users/${user.id}/roles`, manager.token, { roles: ['viewer'] })).statusCode).toBe(200);
  });

  it('counts the deny entries of a role given to a user', async () => {
    const manager = await person(['manager']);
    const user = await person(['user']);
    const admin2 = await person(['admin']);
    // Deny-only roles: one denies what the manager holds, one what it lacks.
    const mild = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'No notes', priority: 900, denied_permissions: ['notes.read'] })).json();
    const harsh = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'No deletes', priority: 900, denied_permissions: ['users.delete'] })).json();
    expect(mild.id && harsh.id).toBeTruthy();

    expect((await call('PUT', `ra/users/${user.id}/roles`, manager.token, { roles: ['user', 'No notes'] })).statusCode).toBe(200);
    const refused = await call('PUT', `ra/users/${user.id}/roles`, manager.token, { roles: ['user', 'No deletes'] });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().detail).toContain('users.delete');
    // Weakening an administrator with a deny-only role: refused, the administrator untouched.
    expect((await call('PUT', `ra/users/${admin2.id}/roles`, manager.token, { roles: ['admin', 'No notes'] })).statusCode).toBe(403);
    expect((await userOf(admin2.id)).roles).toEqual(['admin']);
    // Creating a user with it is a grant too.
    expect((await call('POST', 'ra/users', manager.token, { email: 'new-harsh@ra.example', password: PASSWORD, roles: ['No deletes'] })).statusCode).toBe(403);
    expect((await call('POST', 'ra/users', manager.token, { email: 'new-mild@ra.example', password: PASSWORD, roles: ['user', 'No notes'] })).statusCode).toBe(201);
  });

  it('bounds an API key by its scope, not by its owner', async () => {
    const created = await call('POST', 'ra/me/api-keys', t.tokens.ra, { name: 'narrow', permissions: ['users.read', 'users.update'] });
    expect(created.statusCode).toBe(201);
    const key = { key: created.json().key as string };
    const viewer = await person(['viewer']);
    const manager = await person(['manager']);
    // The key holds users.read and users.update; the viewer holds more reads than that.
    expect((await call('PATCH', `ra/users/${viewer.id}`, key, { first_name: 'Scoped' })).statusCode).toBe(403);
    const bare = await seedUser(t, 'ra', { email: 'bare@ra.example' });
    expect((await call('PATCH', `ra/users/${bare.id}`, key, { first_name: 'Scoped' })).statusCode).toBe(200);
    expect((await call('PATCH', `ra/users/${manager.id}`, key, { first_name: 'Scoped' })).statusCode).toBe(403);
  });

  it('guards deletes, restores and session revocations the same way', async () => {
    const deleter = await person(['manager']);
    // An administrator hands the manager users.delete and sessions.delete as overrides.
    for (const permission of ['users.delete', 'sessions.delete']) {
      expect((await call('PUT', `ra/users/${deleter.id}/permissions/${permission}`, t.tokens.ra, { effect: 'allow' })).statusCode).toBe(200);
    }
    const admin2 = await person(['admin']);
    expect((await call('DELETE', `ra/users/${admin2.id}/sessions`, deleter.token)).statusCode).toBe(403);
    expect((await call('DELETE', `ra/users/${admin2.id}`, deleter.token)).statusCode).toBe(403);
    expect((await userOf(admin2.id)).id).toBe(admin2.id);
    // The administrator deletes it; the manager may not bring it back.
    expect((await call('DELETE', `ra/users/${admin2.id}`, t.tokens.ra)).statusCode).toBe(204);
    expect((await call('POST', `ra/users/${admin2.id}/restore`, deleter.token)).statusCode).toBe(403);
    expect((await call('POST', `ra/users/${admin2.id}/restore`, t.tokens.ra)).statusCode).toBe(200);
    const user = await person(['user']);
    expect((await call('DELETE', `ra/users/${user.id}/sessions`, deleter.token)).statusCode).toBe(200);
    // An override of a permission that does not exist is not there to remove.
    const missing = await call('DELETE', `ra/users/${user.id}/permissions/made.up`, t.tokens.ra);
    expect(missing.statusCode).toBe(404);
  });
});

describe('role edits are grants', () => {
  it('refuses a holder emptying the deny entries of a role they hold (the review\'s self-escalation)', async () => {
    const ops = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'ops', priority: 90, permissions: ['*'], denied_permissions: ['audit_logs.*', 'users.delete'] })).json();
    const holder = await person(['ops']);
    expect((await call('GET', 'ra/audit-logs', holder.token)).statusCode).toBe(403);
    const res = await call('PATCH', `ra/roles/${ops.id}`, holder.token, { denied_permissions: [] });
    expect(res.statusCode).toBe(403);
    expect((await call('PATCH', `ra/roles/${ops.id}`, holder.token, { permissions: ['*', 'audit_logs.read'], denied_permissions: ['users.delete'] })).statusCode).toBe(403);
    expect((await call('PATCH', `ra/roles/${ops.id}`, holder.token, { description: 'mine' })).statusCode).toBe(403);
    expect((await call('GET', `ra/roles/${ops.id}`, t.tokens.ra)).json()).toMatchObject({ permissions: ['*'], denied_permissions: ['audit_logs.*', 'users.delete'] });
    expect((await call('GET', 'ra/audit-logs', holder.token)).statusCode).toBe(403);
    // Someone who does not hold the role, but lacks what its deny entries name, may not lift them either.
    const editor = await person(['manager']);
    for (const permission of ['roles.update', 'roles.create']) await call('PUT', `ra/users/${editor.id}/permissions/${permission}`, t.tokens.ra, { effect: 'allow' });
    const small = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'small', priority: 5, permissions: ['notes.read'], denied_permissions: ['users.delete'] })).json();
    expect((await call('PATCH', `ra/roles/${small.id}`, editor.token, { denied_permissions: [] })).statusCode).toBe(403);
    expect((await call('PATCH', `ra/roles/${small.id}`, editor.token, { permissions: ['notes.read', 'tasks.read'] })).statusCode).toBe(200);
  });

  it('keeps the admin role fixed, so a role editor cannot lock every administrator out', async () => {
    const editor = await person(['viewer']);
    for (const permission of ['roles.read', 'roles.update']) await call('PUT', `ra/users/${editor.id}/permissions/${permission}`, t.tokens.ra, { effect: 'allow' });
    const adminRole = await roleId('admin');
    const res = await call('PATCH', `ra/roles/${adminRole}`, editor.token, { permissions: [], denied_permissions: ['*'], priority: 1000 });
    expect(res.statusCode).toBe(409);
    expect(res.json().detail).toMatch(/admin role/);
    // Not even an administrator changes its entries or priority; its description may change.
    expect((await call('PATCH', `ra/roles/${adminRole}`, t.tokens.ra, { denied_permissions: ['notes.read'] })).statusCode).toBe(409);
    expect((await call('PATCH', `ra/roles/${adminRole}`, t.tokens.ra, { priority: 99 })).statusCode).toBe(409);
    expect((await call('GET', 'ra/users', t.tokens.ra)).statusCode).toBe(200);
    // The same attack on the manager role, which managers hold: it would lower users who out-rank the editor.
    await person(['manager']);
    const managerRole = await roleId('manager');
    expect((await call('PATCH', `ra/roles/${managerRole}`, editor.token, { permissions: [], denied_permissions: ['*'], priority: 1000 })).statusCode).toBe(403);
    expect((await call('GET', `ra/roles/${managerRole}`, t.tokens.ra)).json().denied_permissions).toEqual([]);
  });

  it('refuses creating or deleting a role with entries the actor does not hold', async () => {
    const manager = await person(['manager']);
    await call('PUT', `ra/users/${manager.id}/permissions/roles.create`, t.tokens.ra, { effect: 'allow' });
    await call('PUT', `ra/users/${manager.id}/permissions/roles.delete`, t.tokens.ra, { effect: 'allow' });
    expect((await call('POST', 'ra/roles', manager.token, { name: 'denier', denied_permissions: ['audit_logs.delete'] })).statusCode).toBe(403);
    expect((await call('POST', 'ra/roles', manager.token, { name: 'reader', permissions: ['notes.read'] })).statusCode).toBe(201);
    const wide = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'wide', permissions: ['users.delete'] })).json();
    expect((await call('DELETE', `ra/roles/${wide.id}`, manager.token)).statusCode).toBe(403);
    expect((await call('DELETE', `ra/roles/${wide.id}`, t.tokens.ra)).statusCode).toBe(204);
  });
});

describe('judged on the state before the change, and over time', () => {
  it('refuses renaming a role you hold to slip past the rule, and edits that move an administrator', async () => {
    const editorRole = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'editor', priority: 40, permissions: ['users.read', 'notes.read', 'roles.read', 'roles.update'] })).json();
    const editor = await person(['editor']);
    const res = await call('PATCH', `ra/roles/${editorRole.id}`, editor.token, { name: 'editor2', permissions: ['*'], priority: 1000 });
    expect(res.statusCode).toBe(403);
    expect((await call('GET', `ra/roles/${editorRole.id}`, t.tokens.ra)).json()).toMatchObject({ name: 'editor', permissions: ['notes.read', 'roles.read', 'roles.update', 'users.read'] });
    // A deputy holding all but audit_logs.delete may not edit a role an administrator also holds.
    const deputyRole = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'deputy', priority: 90, permissions: ['*'], denied_permissions: ['audit_logs.delete'] })).json();
    expect(deputyRole.id).toBeTruthy();
    const deputy = await person(['deputy']);
    const helper = (await call('POST', 'ra/roles', t.tokens.ra, { name: 'helper', priority: 0, permissions: ['notes.read'] })).json();
    const admin3 = await person(['admin', 'helper']);
    expect((await call('PATCH', `ra/roles/${helper.id}`, deputy.token, { permissions: [], denied_permissions: ['notes.read'], priority: 200 })).statusCode).toBe(403);
    expect(await effective(admin3.id)).toContain('notes.read');
    // Nor give an API key a wildcard it does not wholly hold.
    expect((await call('POST', 'ra/me/api-keys', deputy.token, { name: 'all', permissions: ['*'] })).statusCode).toBe(403);
    expect((await call('POST', 'ra/me/api-keys', deputy.token, { name: 'users', permissions: ['users.*'] })).statusCode).toBe(201);
  });

  it('counts what an expiring deny hides, and not an expiring allow of everything', async () => {
    const deputy = await person(['deputy']);
    const a2 = await person(['admin']);
    const soon = new Date(Date.now() + 60_000).toISOString();
    expect((await call('PUT', `ra/users/${a2.id}/permissions/audit_logs.delete`, t.tokens.ra, { effect: 'deny', expires_at: soon })).statusCode).toBe(200);
    expect(await effective(a2.id)).not.toContain('audit_logs.delete');
    // Today a2 lacks audit_logs.delete, as the deputy does; in a minute a2 out-ranks it again.
    expect((await call('PATCH', `ra/users/${a2.id}`, deputy.token, { email: 'attacker@evil.example' })).statusCode).toBe(403);

    await seedTenant(t, 're');
    const only = (await login(t.app, 're', 'admin@re.example')).access_token;
    const onlyId = ((await call('GET', 're/users', only)).json().items as { id: string }[])[0]!.id;
    const y = await person(['user'], 're');
    expect((await call('PUT', `re/users/${y.id}/permissions/*`, only, { effect: 'allow', expires_at: soon })).statusCode).toBe(200);
    // y holds everything for a minute only: it does not count as the one who remains.
    expect((await call('PATCH', `re/users/${onlyId}`, only, { status: 'suspended' })).statusCode).toBe(409);
  });
});

describe('the last administrator', () => {
  it('is judged on effective permissions, not on the role name', async () => {
    // Tenant rb: its admin, and a user holding everything through a custom role.
    const rootRole = (await call('POST', 'rb/roles', t.tokens.rb, { name: 'root', priority: 100, permissions: ['*'] })).json();
    expect(rootRole.id).toBeTruthy();
    const root = await person(['root'], 'rb');
    const rbAdmin = ((await call('GET', 'rb/users?search=admin@rb', t.tokens.rb)).json().items as { id: string }[])[0]!.id;
    // The root user weakens the admin (it out-ranks it: it holds everything too).
    expect((await call('PUT', `rb/users/${rbAdmin}/permissions/notes.read`, root.token, { effect: 'deny' })).statusCode).toBe(200);
    // Now the admin role's holder lacks notes.read; root is the only one holding everything.
    const suspend = await call('PATCH', `rb/users/${root.id}`, root.token, { status: 'suspended' });
    expect(suspend.statusCode).toBe(409);
    expect(suspend.json().detail).toMatch(/every permission/);
    expect((await call('PUT', `rb/users/${root.id}/permissions/notes.read`, root.token, { effect: 'deny' })).statusCode).toBe(403);
    // The weakened admin cannot touch root, which out-ranks it.
    const weakened = (await login(t.app, 'rb', 'admin@rb.example')).access_token;
    expect((await call('PATCH', `rb/users/${root.id}`, weakened, { status: 'suspended' })).statusCode).toBe(403);
    // Once the admin holds everything again, root may step down.
    expect((await call('DELETE', `rb/users/${rbAdmin}/permissions/notes.read`, root.token)).statusCode).toBe(204);
    expect((await call('PATCH', `rb/users/${root.id}`, t.tokens.rb, { status: 'suspended' })).statusCode).toBe(200);
    // Tenant ra saw none of it.
    expect((await call('GET', `ra/users/${root.id}`, t.tokens.ra)).statusCode).toBe(404);
    expect((await call('GET', 'ra/roles?search=root', t.tokens.ra)).json().total).toBe(0);
  });

  it('lets only one of two administrators demoting each other at once succeed', async () => {
    await seedTenant(t, 'rc');
    const a = await person(['admin'], 'rc');
    const first = (await login(t.app, 'rc', 'admin@rc.example')).access_token;
    const firstId = ((await call('GET', 'rc/users?search=admin@rc', first)).json().items as { id: string }[])[0]!.id;
    // Remove the seeded admin's standing so that exactly two administrators are left: a and first.
    const [x, y] = await Promise.all([call('PUT', `rc/users/${firstId}/roles`, a.token, { roles: ['viewer'] }), call('PUT', `rc/users/${a.id}/roles`, first, { roles: ['viewer'] })]);
    expect([x.statusCode, y.statusCode].sort()).toEqual([200, 403]);
    const admins = (await call('GET', 'rc/users?role=admin', x.statusCode === 200 ? a.token : first)).json().items as unknown[];
    expect(admins).toHaveLength(1);
  });

  it('refuses a change from an actor suspended while its request waited for the lock', async () => {
    const target = await person(['admin']);
    // Hold the tenant's access lock, queue the suspension, then the target's own reactivation.
    const holder = await t.db.database.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT 1 FROM tenant_ra.permissions WHERE name = '*' FOR NO KEY UPDATE");
      const suspend = call('PATCH', `ra/users/${target.id}`, t.tokens.ra, { status: 'suspended' });
      await new Promise((r) => setTimeout(r, 150));
      const reactivate = call('PATCH', `ra/users/${target.id}`, target.token, { status: 'active' });
      await new Promise((r) => setTimeout(r, 150));
      await holder.query('COMMIT');
      expect((await suspend).statusCode).toBe(200);
      expect((await reactivate).statusCode).toBe(401);
    } finally {
      holder.release();
    }
    expect((await userOf(target.id)).status).toBe('suspended');
  });

  it('refuses suspending or deleting the only administrator', async () => {
    await seedTenant(t, 'rd');
    const token = (await login(t.app, 'rd', 'admin@rd.example')).access_token;
    const id = ((await call('GET', 'rd/users', token)).json().items as { id: string }[])[0]!.id;
    expect((await call('PATCH', `rd/users/${id}`, token, { status: 'suspended' })).statusCode).toBe(409);
    expect((await call('PUT', `rd/users/${id}/permissions/users.read`, token, { effect: 'deny' })).statusCode).toBe(403);
    expect((await call('GET', 'rd/users', token)).statusCode).toBe(200);
  });
});
