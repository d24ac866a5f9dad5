import { beforeAll, describe, expect, it } from 'vitest';
import { PERMISSION_CATALOGUE } from '../src/access/catalogue.js';
import { DEFAULT_SETTINGS } from '../src/settings/defaults.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser, type SeededUser } from './support/tenants.js';

const t = useTenants(['ma', 'mb']);
let viewer: string;
let manager: string;
let viewerUser: SeededUser;

beforeAll(async () => {
  viewerUser = await seedUser(t, 'ma', { email: 'viewer@ma.example', roles: ['viewer'] });
  await seedUser(t, 'ma', { email: 'manager@ma.example', roles: ['manager'] });
  viewer = (await login(t.app, 'ma', viewerUser.email)).access_token;
  manager = (await login(t.app, 'ma', 'manager@ma.example')).access_token;
});

const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, token: string, payload?: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url: `/api/v1/tenants/${url}`, headers: { ...bearer(token), ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });

describe('permissions and roles', () => {
  it('serves the permission catalogue with descriptions', async () => {
    const res = await call('GET', 'ma/permissions', viewer);
    expect(res.statusCode).toBe(200);
    expect(res.json().items).toHaveLength(PERMISSION_CATALOGUE.length);
    expect(res.json().items).toContainEqual({ name: 'users.read', resource: 'users', action: 'read', description: 'Read users' });
  });

  it('creates, reads, updates and deletes a custom role with allow and deny entries', async () => {
    const created = await call('POST', 'ma/roles', t.tokens.ma, { name: 'Auditor', description: 'Reads the trail', priority: 60, permissions: ['audit_logs.read', 'users.read'], denied_permissions: ['users.delete'] });
    expect(created.statusCode).toBe(201);
    const role = created.json();
    expect(role).toMatchObject({ name: 'Auditor', priority: 60, is_system: false, permissions: ['audit_logs.read', 'users.read'], denied_permissions: ['users.delete'] });
    expect(created.headers.etag).toBe('"1"');
    const list = (await call('GET', 'ma/roles?sort=-priority', viewer)).json();
    expect(list.items.map((r: { name: string }) => r.name)).toEqual(['admin', 'manager', 'Auditor', 'user', 'viewer']);

    const updated = await call('PATCH', `ma/roles/${role.id}`, t.tokens.ma, { permissions: ['audit_logs.read'] }, { 'if-match': '"1"' });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toMatchObject({ permissions: ['audit_logs.read'], denied_permissions: ['users.delete'] });
    expect((await call('PATCH', `ma/roles/${role.id}`, t.tokens.ma, { priority: 1 }, { 'if-match': '"1"' })).statusCode).toBe(412);

    expect((await call('DELETE', `ma/roles/${role.id}`, t.tokens.ma)).statusCode).toBe(204);
    expect((await call('GET', `ma/roles/${role.id}`, t.tokens.ma)).statusCode).toBe(404);
    // The name is free again.
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: 'auditor' })).statusCode).toBe(201);
  });

  it('refuses unknown permissions, duplicates, and deleting or renaming system roles', async () => {
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: 'Bad', permissions: ['made.up'] })).statusCode).toBe(400);
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: 'Both', permissions: ['users.read'], denied_permissions: ['users.read'] })).statusCode).toBe(400);
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: 'MANAGER' })).statusCode).toBe(409);
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: '' })).statusCode).toBe(400);
    expect((await call('POST', 'ma/roles', t.tokens.ma, { name: 'x', priority: 5000 })).statusCode).toBe(400);
    const roles = (await call('GET', 'ma/roles', t.tokens.ma)).json().items as { id: string; name: string }[];
    const system = roles.find((r) => r.name === 'viewer')!;
    expect((await call('DELETE', `ma/roles/${system.id}`, t.tokens.ma)).statusCode).toBe(409);
    expect((await call('PATCH', `ma/roles/${system.id}`, t.tokens.ma, { name: 'watcher' })).statusCode).toBe(409);
    expect((await call('PATCH', `ma/roles/${system.id}`, t.tokens.ma, { description: 'Look, do not touch' })).statusCode).toBe(200);
  });

  it('refuses deleting a custom role that is assigned', async () => {
    const role = (await call('POST', 'ma/roles', t.tokens.ma, { name: 'Temp', permissions: ['notes.read'] })).json();
    const user = await seedUser(t, 'ma', { email: 'temp-holder@ma.example' });
    expect((await call('PUT', `ma/users/${user.id}/roles`, t.tokens.ma, { roles: ['Temp'] })).statusCode).toBe(200);
    expect((await call('DELETE', `ma/roles/${role.id}`, t.tokens.ma)).statusCode).toBe(409);
  });

  it('lets nobody grant what they do not hold, and a viewer change nothing', async () => {
    expect((await call('POST', 'ma/roles', manager, { name: 'Escalate', permissions: ['users.delete'] })).statusCode).toBe(403);
    expect((await call('POST', 'ma/roles', viewer, { name: 'Nope' })).statusCode).toBe(403);
    const roles = (await call('GET', 'ma/roles', t.tokens.ma)).json().items as { id: string; name: string }[];
    expect((await call('PATCH', `ma/roles/${roles[0]!.id}`, viewer, { description: 'x' })).statusCode).toBe(403);
  });

  it('a change to a role applies to its holders at once', async () => {
    const role = (await call('POST', 'ma/roles', t.tokens.ma, { name: 'Readers', permissions: ['teams.read'] })).json();
    const user = await seedUser(t, 'ma', { email: 'reader@ma.example' });
    await call('PUT', `ma/users/${user.id}/roles`, t.tokens.ma, { roles: ['Readers'] });
    const token = (await login(t.app, 'ma', user.email)).access_token;
    expect((await call('GET', 'ma/teams', token)).statusCode).toBe(200);
    await call('PATCH', `ma/roles/${role.id}`, t.tokens.ma, { permissions: [], denied_permissions: ['teams.read'] });
    expect((await call('GET', 'ma/teams', token)).statusCode).toBe(403);
  });

  it('keeps roles per tenant', async () => {
    const role = (await call('POST', 'ma/roles', t.tokens.ma, { name: 'OnlyHere' })).json();
    expect((await call('GET', `mb/roles/${role.id}`, t.tokens.mb)).statusCode).toBe(404);
    expect((await call('DELETE', `mb/roles/${role.id}`, t.tokens.mb)).statusCode).toBe(404);
    expect((await call('GET', 'mb/roles?search=OnlyHere', t.tokens.mb)).json().total).toBe(0);
  });
});

describe('settings', () => {
  it('lists and reads settings, by id or key', async () => {
    const list = (await call('GET', 'ma/settings?page_size=100', viewer)).json();
    expect(list.total).toBe(DEFAULT_SETTINGS.length);
    const byKey = await call('GET', 'ma/settings/password.min_length', viewer);
    expect(byKey.json()).toMatchObject({ key: 'password.min_length', value: 12, type: 'number', category: 'password' });
    expect((await call('GET', `ma/settings/${byKey.json().id}`, viewer)).json().key).toBe('password.min_length');
    expect((await call('GET', 'ma/settings?category=lockout', viewer)).json().items.map((s: { key: string }) => s.key)).toEqual(['lockout.duration_minutes', 'lockout.max_duration_minutes', 'lockout.max_failures']);
  });

  it('checks values against type and constraints, and the service follows the new policy', async () => {
    for (const [key, value] of [
      ['password.min_length', 'twelve'],
      ['password.min_length', 4],
      ['password.min_length', 12.5],
      ['auth.require_email_verification', 'yes'],
      ['timezone.default', 'Nowhere/Land'],
      ['branding', null],
    ] as const) {
      const res = await call('PUT', `ma/settings/${key}`, t.tokens.ma, { value });
      expect(res.statusCode, `${key}=${JSON.stringify(value)}`).toBe(400);
      expect(res.json().errors[0].field).toBe('value');
    }
    expect((await call('PUT', 'ma/settings/password.min_length', viewer, { value: 16 })).statusCode).toBe(403);
    const current = await call('GET', 'ma/settings/password.min_length', t.tokens.ma);
    const set = await call('PUT', 'ma/settings/password.min_length', t.tokens.ma, { value: 16 }, { 'if-match': current.headers.etag as string });
    expect(set.statusCode).toBe(200);
    expect(set.json().value).toBe(16);
    expect((await call('PUT', 'ma/settings/password.min_length', t.tokens.ma, { value: 17 }, { 'if-match': current.headers.etag as string })).statusCode).toBe(412);
    const weak = await call('POST', 'ma/users', t.tokens.ma, { email: 'policy@ma.example', password: 'fourteen chars' });
    expect(weak.statusCode).toBe(400);
    expect(weak.json().errors[0]).toEqual({ field: 'password', reason: 'must be at least 16 characters' });
    // Another tenant keeps its own value.
    expect((await call('GET', 'mb/settings/password.min_length', t.tokens.mb)).json().value).toBe(12);
    expect((await call('PUT', 'ma/settings/branding', t.tokens.ma, { value: { product_name: 'Acme', primary_color: '#123456' } })).statusCode).toBe(200);
    expect((await call('PUT', 'ma/settings/no.such.key', t.tokens.ma, { value: 1 })).statusCode).toBe(404);
  });
});

describe('audit logs', () => {
  it('filters the trail, newest first, with before/after and no secrets', async () => {
    const created = (await call('POST', 'ma/users', t.tokens.ma, { email: 'audited@ma.example', password: 'a fine long passphrase!' })).json();
    await call('PATCH', `ma/users/${created.id}`, t.tokens.ma, { first_name: 'Aud' });
    const res = await call('GET', `ma/audit-logs?entity_type=users&entity_id=${created.id}`, t.tokens.ma);
    expect(res.statusCode).toBe(200);
    const entries = res.json().items;
    expect(entries.map((e: { action: string }) => e.action)).toEqual(['users.update', 'users.create']);
    expect(entries[0]).toMatchObject({ actor_user_id: t.admins.ma.id, actor_type: 'user', before: expect.objectContaining({ first_name: null }), after: expect.objectContaining({ first_name: 'Aud' }), request_id: expect.any(String) });
    expect(JSON.stringify(res.json())).not.toMatch(/argon2|password_hash"\s*:\s*"\$/);
    const byAction = (await call('GET', 'ma/audit-logs?action=users.create&page_size=100', t.tokens.ma)).json();
    expect(byAction.items.every((e: { action: string }) => e.action === 'users.create')).toBe(true);
    const byActor = (await call('GET', `ma/audit-logs?actor_user_id=${t.admins.ma.id}&page_size=5`, t.tokens.ma)).json();
    expect(byActor.items).toHaveLength(5);
    const future = (await call('GET', `ma/audit-logs?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, t.tokens.ma)).json();
    expect(future.total).toBe(0);
    expect((await call('GET', 'ma/audit-logs?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', t.tokens.ma)).statusCode).toBe(400);
  });

  it('is readable by managers, not viewers, never writable, and per tenant', async () => {
    expect((await call('GET', 'ma/audit-logs', manager)).statusCode).toBe(200);
    expect((await call('GET', 'ma/audit-logs', viewer)).statusCode).toBe(403);
    const entry = (await call('GET', 'ma/audit-logs?page_size=1', t.tokens.ma)).json().items[0];
    expect((await call('DELETE', `ma/audit-logs/${entry.id}`, t.tokens.ma)).statusCode).toBe(404);
    expect((await call('PUT', `ma/audit-logs/${entry.id}`, t.tokens.ma, {})).statusCode).toBe(404);
    const other = (await call('GET', 'mb/audit-logs?page_size=100', t.tokens.mb)).json();
    expect(other.items.some((e: { id: string }) => e.id === entry.id)).toBe(false);
  });
});

describe('teams', () => {
  it('creates nested teams, refuses cycles, and manages members', async () => {
    const parent = (await call('POST', 'ma/teams', t.tokens.ma, { name: 'Engineering' })).json();
    const child = (await call('POST', 'ma/teams', manager, { name: 'Platform', parent_team_id: parent.id })).json();
    const grandchild = (await call('POST', 'ma/teams', t.tokens.ma, { name: 'Databases', parent_team_id: child.id })).json();
    expect(grandchild.parent_team_id).toBe(child.id);
    expect((await call('PATCH', `ma/teams/${parent.id}`, t.tokens.ma, { parent_team_id: grandchild.id })).statusCode).toBe(409);
    expect((await call('PATCH', `ma/teams/${parent.id}`, t.tokens.ma, { parent_team_id: parent.id })).statusCode).toBe(409);
    expect((await call('POST', 'ma/teams', t.tokens.ma, { name: 'engineering' })).statusCode).toBe(409);
    expect((await call('POST', 'ma/teams', t.tokens.ma, { name: 'Orphan', parent_team_id: '00000000-0000-4000-8000-000000000000' })).statusCode).toBe(400);
    expect((await call('DELETE', `ma/teams/${child.id}`, t.tokens.ma)).statusCode).toBe(409); // has a sub-team

    const put = await call('PUT', `ma/teams/${child.id}/members/${viewerUser.id}`, t.tokens.ma, { role: 'lead' });
    expect(put.json()).toMatchObject({ role: 'lead', created: true });
    const members = (await call('GET', `ma/teams/${child.id}/members`, viewer)).json().items;
    expect(members).toEqual([expect.objectContaining({ user_id: viewerUser.id, email: viewerUser.email, role: 'lead' })]);
    const inTeam = (await call('GET', `ma/users?team=${child.id}`, t.tokens.ma)).json();
    expect(inTeam.items.map((u: { id: string }) => u.id)).toEqual([viewerUser.id]);
    expect((await call('PUT', `ma/teams/${child.id}/members/${viewerUser.id}`, t.tokens.ma, { role: 'boss' })).statusCode).toBe(400);
    expect((await call('DELETE', `ma/teams/${child.id}/members/${viewerUser.id}`, t.tokens.ma)).statusCode).toBe(204);
    expect((await call('DELETE', `ma/teams/${child.id}/members/${viewerUser.id}`, t.tokens.ma)).statusCode).toBe(404);
    expect((await call('GET', `ma/teams?parent_team_id=${parent.id}`, viewer)).json().items.map((x: { name: string }) => x.name)).toEqual(['Platform']);
    const names = async (sort: string) => (await call('GET', `ma/teams?sort=${sort}`, viewer)).json().items.map((x: { name: string }) => x.name);
    expect(await names('name')).toEqual(['Databases', 'Engineering', 'Platform']);
    expect(await names('-name')).toEqual(['Platform', 'Engineering', 'Databases']);
  });

  it('refuses concurrent moves that together would make a cycle', async () => {
    const a = (await call('POST', 'ma/teams', t.tokens.ma, { name: 'Cycle A' })).json();
    const b = (await call('POST', 'ma/teams', t.tokens.ma, { name: 'Cycle B' })).json();
    const results = await Promise.all([call('PATCH', `ma/teams/${a.id}`, t.tokens.ma, { parent_team_id: b.id }), call('PATCH', `ma/teams/${b.id}`, t.tokens.ma, { parent_team_id: a.id })]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
  });

  it('keeps teams per tenant, refuses viewers and members of another tenant', async () => {
    const team = (await call('POST', 'ma/teams', t.tokens.ma, { name: 'Private' })).json();
    expect((await call('GET', `mb/teams/${team.id}`, t.tokens.mb)).statusCode).toBe(404);
    expect((await call('POST', 'ma/teams', viewer, { name: 'Nope' })).statusCode).toBe(403);
    const other = await seedUser(t, 'mb', { email: 'stranger@mb.example' });
    expect((await call('PUT', `ma/teams/${team.id}/members/${other.id}`, t.tokens.ma, { role: 'member' })).statusCode).toBe(404);
    const etag = (await call('GET', `ma/teams/${team.id}`, t.tokens.ma)).headers.etag as string;
    expect((await call('DELETE', `ma/teams/${team.id}`, t.tokens.ma, undefined, { 'if-match': '"99"' })).statusCode).toBe(412);
    expect((await call('DELETE', `ma/teams/${team.id}`, t.tokens.ma, undefined, { 'if-match': etag })).statusCode).toBe(204);
  });
});
