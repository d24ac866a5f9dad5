import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { PREVIEW_LIST_MAX } from '../src/access/preview.js';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/**
 * The change preview (`?dry_run=true`, SPEC §17): checked like the real change, answered with
 * who would gain or lose what, and nothing kept. Two tenants: the neighbour never moves.
 */
const t = useTenants(['cpa', 'cpb']);

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const call = (method: Method, url: string, token: string, payload?: unknown, headers: Record<string, string> = {}, slug = 'cpa') =>
  t.app.inject({ method, url: `/api/v1/tenants/${slug}/${url}`, headers: { ...bearer(token), ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });
const dry = (url: string) => `${url}${url.includes('?') ? '&' : '?'}dry_run=true`;

/** Everything a change of who holds what writes, in one comparable value (counts and rows). */
async function stateOf(slug: string) {
  const db = tenantDb(t.db.database.db, `tenant_${slug}`);
  const count = async (table: 'audit_logs' | 'outbox_events' | 'idempotency_keys') => Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const denials = Number((await db.selectFrom('audit_logs').select((eb) => eb.fn.countAll<string>().as('n')).where('action', '=', 'auth.permission_denied').executeTakeFirstOrThrow()).n);
  return {
    // A refused route permission is a security event, audited for a dry run as for the real request.
    denials,
    audit: (await count('audit_logs')) - denials,
    events: await count('outbox_events'),
    idempotency: await count('idempotency_keys'),
    roles: await db.selectFrom('roles').select(['id', 'name', 'description', 'priority', 'version', 'deleted_at']).orderBy('id').execute(),
    grants: await db.selectFrom('role_permissions').select(['role_id', 'permission_id', 'effect']).orderBy('role_id').orderBy('permission_id').execute(),
    memberships: await db.selectFrom('user_roles').select(['user_id', 'role_id']).orderBy('user_id').orderBy('role_id').execute(),
    overrides: await db.selectFrom('user_permissions').select(['user_id', 'permission_id', 'effect', 'expires_at']).orderBy('user_id').orderBy('permission_id').execute(),
    users: await db.selectFrom('users').select(['id', 'version', 'updated_at']).orderBy('id').execute(),
  };
}

const effectiveOf = async (userId: string, slug = 'cpa') => (await call('GET', `users/${userId}/permissions`, t.tokens[slug as 'cpa' | 'cpb'], undefined, {}, slug)).json().effective as string[];
const diff = (before: string[], after: string[]) => ({ gained: after.filter((p) => !before.includes(p)), lost: before.filter((p) => !after.includes(p)) });

/** A problem without its request id: what a dry run and the real request must both answer. */
const problemOf = (res: { statusCode: number; json(): Record<string, unknown> }): { status: number; code: string } & Record<string, unknown> => {
  const { request_id: _id, trace_id: _trace, ...problem } = res.json();
  return { status: res.statusCode, code: String(problem.code), ...problem };
};

/**
 * Sends the request as a dry run, then for real: both must refuse alike and write alike (nothing,
 * or the same security audit row of a refused route permission).
 */
async function refusedAlike(method: Method, url: string, token: string, payload?: unknown, headers: Record<string, string> = {}) {
  const before = await stateOf('cpa');
  const preview = await call(method, dry(url), token, payload, headers);
  const between = await stateOf('cpa');
  const real = await call(method, url, token, payload, headers);
  const after = await stateOf('cpa');
  expect({ ...between, denials: 0 }).toEqual({ ...before, denials: 0 });
  expect({ ...after, denials: 0 }).toEqual({ ...before, denials: 0 });
  expect(between.denials - before.denials).toBe(after.denials - between.denials);
  expect(real.statusCode).toBeGreaterThanOrEqual(400);
  expect(problemOf(preview)).toEqual(problemOf(real));
  return problemOf(real);
}

let serial = 0;
const role = async (permissions: string[], extra: Record<string, unknown> = {}) => {
  const res = await call('POST', 'roles', t.tokens.cpa, { name: `r${++serial}`, priority: 20, permissions, ...extra });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; name: string };
};

describe('role changes', () => {
  it('PUT and PATCH preview who gains and loses what, keep nothing, and match the change then made', async () => {
    const r = await role(['notes.read']);
    const zed = await seedUser(t, 'cpa', { email: 'zed@cpa.example', roles: [r.name] });
    const amy = await seedUser(t, 'cpa', { email: 'amy@cpa.example', roles: [r.name, 'viewer'] });
    const other = await seedUser(t, 'cpa', { email: 'other@cpa.example', roles: ['viewer'] });
    const neighbour = await stateOf('cpb');
    const body = { permissions: ['audit_logs.read', 'notes.read'], denied_permissions: ['users.read'], priority: 20 };
    const befores = { zed: await effectiveOf(zed.id), amy: await effectiveOf(amy.id), other: await effectiveOf(other.id) };
    const state = await stateOf('cpa');

    for (const method of ['PUT', 'PATCH'] as const) {
      const preview = await call(method, dry(`roles/${r.id}`), t.tokens.cpa, body);
      expect(preview.statusCode, preview.body).toBe(200);
      expect(preview.headers.etag).toBeUndefined();
      expect(preview.json()).toEqual({
        dry_run: true,
        total_affected: 2,
        affected: [
          // By email; amy's viewer role (priority 10) allows users.read, the edited role (20) denies it.
          { user_id: amy.id, email: 'amy@cpa.example', gained: ['audit_logs.read'], lost: ['users.read'] },
          { user_id: zed.id, email: 'zed@cpa.example', gained: ['audit_logs.read'], lost: [] },
        ],
      });
      expect(await stateOf('cpa')).toEqual(state);
    }
    expect((await call('GET', `roles/${r.id}`, t.tokens.cpa)).json()).toMatchObject({ permissions: ['notes.read'], denied_permissions: [] });
    expect(await effectiveOf(amy.id)).toEqual(befores.amy);

    const preview = (await call('PUT', dry(`roles/${r.id}`), t.tokens.cpa, body)).json();
    expect((await call('PUT', `roles/${r.id}`, t.tokens.cpa, body)).statusCode).toBe(200);
    const made = [
      { user_id: amy.id, email: 'amy@cpa.example', ...diff(befores.amy, await effectiveOf(amy.id)) },
      { user_id: zed.id, email: 'zed@cpa.example', ...diff(befores.zed, await effectiveOf(zed.id)) },
    ];
    expect(preview.affected).toEqual(made);
    expect(await effectiveOf(other.id)).toEqual(befores.other);
    expect(await stateOf('cpb')).toEqual(neighbour);
  });

  it('a change that moves nobody previews no one (a description, an unheld role)', async () => {
    const r = await role(['notes.read']);
    await seedUser(t, 'cpa', { email: 'desc@cpa.example', roles: [r.name] });
    expect((await call('PATCH', dry(`roles/${r.id}`), t.tokens.cpa, { description: 'Reads notes' })).json()).toEqual({ dry_run: true, total_affected: 0, affected: [] });
    const unheld = await role(['notes.read']);
    expect((await call('PATCH', dry(`roles/${unheld.id}`), t.tokens.cpa, { permissions: ['notes.*'] })).json()).toEqual({ dry_run: true, total_affected: 0, affected: [] });
  });

  it('DELETE previews with 200 and keeps the role; refuses as the real delete does', async () => {
    const r = await role(['notes.read']);
    const state = await stateOf('cpa');
    const preview = await call('DELETE', dry(`roles/${r.id}`), t.tokens.cpa);
    expect(preview.statusCode).toBe(200);
    expect(preview.json()).toEqual({ dry_run: true, total_affected: 0, affected: [] });
    expect(await stateOf('cpa')).toEqual(state);
    expect((await call('GET', `roles/${r.id}`, t.tokens.cpa)).statusCode).toBe(200);

    // Held roles and system roles cannot be deleted: a preview says so, with the same problem.
    const held = await role(['notes.read']);
    await seedUser(t, 'cpa', { email: 'holder@cpa.example', roles: [held.name] });
    expect((await refusedAlike('DELETE', `roles/${held.id}`, t.tokens.cpa)).code).toBe('role.assigned');
    const viewer = (await call('GET', 'roles?search=viewer', t.tokens.cpa)).json().items[0].id as string;
    expect((await refusedAlike('DELETE', `roles/${viewer}`, t.tokens.cpa)).code).toBe('role.system_immutable');
    expect((await call('DELETE', `roles/${r.id}`, t.tokens.cpa)).statusCode).toBe(204);
  });

  it('If-Match is checked: a stale version is 412, the current one previews', async () => {
    const r = await role(['notes.read']);
    expect((await refusedAlike('PATCH', `roles/${r.id}`, t.tokens.cpa, { priority: 30 }, { 'if-match': '"7"' })).status).toBe(412);
    expect((await refusedAlike('DELETE', `roles/${r.id}`, t.tokens.cpa, undefined, { 'if-match': '"7"' })).status).toBe(412);
    expect((await call('PATCH', dry(`roles/${r.id}`), t.tokens.cpa, { priority: 30 }, { 'if-match': '"1"' })).statusCode).toBe(200);
    expect((await call('DELETE', dry(`roles/${r.id}`), t.tokens.cpa, undefined, { 'if-match': '"1"' })).statusCode).toBe(200);
    // The previews left the version as it was.
    expect((await call('PATCH', `roles/${r.id}`, t.tokens.cpa, { priority: 30 }, { 'if-match': '"1"' })).headers.etag).toBe('"2"');
  });

  it('refuses a role edit exactly as the real one: permission, out-rank, admin role, validation, another tenant', async () => {
    const r = await role(['notes.read']);
    await seedUser(t, 'cpa', { email: 'mgr@cpa.example', roles: ['manager'] });
    const manager = (await login(t.app, 'cpa', 'mgr@cpa.example')).access_token;
    expect((await refusedAlike('PATCH', `roles/${r.id}`, manager, { priority: 30 })).code).toBe('permission.denied');
    expect((await refusedAlike('DELETE', `roles/${r.id}`, manager)).code).toBe('permission.denied');

    // Holds roles.update, but not what the edit grants; and not a role it holds itself.
    const editor = await role(['roles.read', 'roles.update', 'notes.read', 'notes.update'], { priority: 40 });
    await seedUser(t, 'cpa', { email: 'ed@cpa.example', roles: [editor.name] });
    const ed = (await login(t.app, 'cpa', 'ed@cpa.example')).access_token;
    expect((await refusedAlike('PATCH', `roles/${r.id}`, ed, { permissions: ['notes.read', 'users.delete'] })).code).toBe('permission.not_held');
    expect((await refusedAlike('PATCH', `roles/${editor.id}`, ed, { description: 'mine' })).code).toBe('permission.self_change');
    // A holder who out-ranks the editor would be moved.
    await seedUser(t, 'cpa', { email: 'boss@cpa.example', roles: [r.name, 'admin'] });
    expect((await refusedAlike('PATCH', `roles/${r.id}`, ed, { denied_permissions: ['notes.update'], priority: 200 })).code).toBe('permission.outranked');

    const admin = (await call('GET', 'roles?search=admin', t.tokens.cpa)).json().items[0].id as string;
    expect((await refusedAlike('PATCH', `roles/${admin}`, t.tokens.cpa, { priority: 5 })).code).toBe('role.system_immutable');
    expect((await refusedAlike('PATCH', `roles/${r.id}`, t.tokens.cpa, { permissions: ['nope.read'] })).status).toBe(400);
    const theirs = (await call('POST', 'roles', t.tokens.cpb, { name: 'theirs', permissions: ['notes.read'] }, {}, 'cpb')).json().id as string;
    expect((await refusedAlike('PATCH', `roles/${theirs}`, t.tokens.cpa, { priority: 30 })).code).toBe('role.not_found');
  });

  it('counts every holder, lists the first of them by email', async () => {
    const r = await role(['notes.read']);
    const db = tenantDb(t.db.database.db, 'tenant_cpa');
    const many = PREVIEW_LIST_MAX + 5;
    await sql`INSERT INTO tenant_cpa.users (email, status) SELECT 'bulk' || lpad(i::text, 5, '0') || '@cpa.example', 'active' FROM generate_series(1, ${many}) AS i`.execute(db);
    await sql`INSERT INTO tenant_cpa.user_roles (user_id, role_id) SELECT id, ${r.id} FROM tenant_cpa.users WHERE email LIKE 'bulk%'`.execute(db);
    const preview = (await call('PATCH', dry(`roles/${r.id}`), t.tokens.cpa, { permissions: ['notes.read', 'tasks.read'] })).json();
    expect(preview.total_affected).toBe(many);
    expect(preview.affected).toHaveLength(PREVIEW_LIST_MAX);
    expect(preview.affected[0]).toMatchObject({ email: 'bulk00001@cpa.example', gained: ['tasks.read'], lost: [] });
    expect(preview.affected.at(-1).email).toBe(`bulk${String(PREVIEW_LIST_MAX).padStart(5, '0')}@cpa.example`);
    await sql`DELETE FROM tenant_cpa.user_roles WHERE role_id = ${r.id}`.execute(db);
  });
});

describe("a user's roles and overrides", () => {
  it('PUT users/{id}/roles previews the one user, keeps nothing, and matches the change', async () => {
    const user = await seedUser(t, 'cpa', { email: 'ur@cpa.example', roles: ['viewer'] });
    const before = await effectiveOf(user.id);
    const state = await stateOf('cpa');
    const preview = await call('PUT', dry(`users/${user.id}/roles`), t.tokens.cpa, { roles: ['user'] }, { 'idempotency-key': 'preview-1' });
    expect(preview.statusCode).toBe(200);
    expect(await stateOf('cpa')).toEqual(state);
    const real = await call('PUT', `users/${user.id}/roles`, t.tokens.cpa, { roles: ['user'] });
    expect(real.json().roles).toEqual(['user']);
    const made = diff(before, await effectiveOf(user.id));
    expect(made.gained.length + made.lost.length).toBeGreaterThan(0);
    expect(preview.json()).toEqual({ dry_run: true, total_affected: 1, affected: [{ user_id: user.id, email: 'ur@cpa.example', ...made }] });
    // The same roles again move nobody.
    expect((await call('PUT', dry(`users/${user.id}/roles`), t.tokens.cpa, { roles: ['user'] })).json()).toEqual({ dry_run: true, total_affected: 0, affected: [] });
  });

  it('PUT and DELETE users/{id}/permissions/{permission} preview the override, keep nothing, and match the change', async () => {
    const user = await seedUser(t, 'cpa', { email: 'ov@cpa.example', roles: ['viewer'] });
    const state = await stateOf('cpa');
    const put = await call('PUT', dry(`users/${user.id}/permissions/notes.*`), t.tokens.cpa, { effect: 'allow' });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ dry_run: true, total_affected: 1, affected: [{ user_id: user.id, email: 'ov@cpa.example', gained: ['notes.create', 'notes.update', 'notes.delete'], lost: [] }] });
    expect(await stateOf('cpa')).toEqual(state);
    expect((await call('PUT', `users/${user.id}/permissions/notes.*`, t.tokens.cpa, { effect: 'allow' })).statusCode).toBe(200);

    const del = await call('DELETE', dry(`users/${user.id}/permissions/notes.*`), t.tokens.cpa);
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ dry_run: true, total_affected: 1, affected: [{ user_id: user.id, email: 'ov@cpa.example', gained: [], lost: ['notes.create', 'notes.update', 'notes.delete'] }] });
    expect((await call('DELETE', `users/${user.id}/permissions/notes.*`, t.tokens.cpa)).statusCode).toBe(204);
    // A deny on what a role denies anyway moves nothing.
    expect((await call('PUT', dry(`users/${user.id}/permissions/webhooks.read`), t.tokens.cpa, { effect: 'deny' })).json().total_affected).toBe(0);
  });

  it('refuses exactly as the real change: permission, self, out-rank, unknown names, missing override, another tenant', async () => {
    const target = await seedUser(t, 'cpa', { email: 'tg@cpa.example', roles: ['viewer'] });
    const mgr = await seedUser(t, 'cpa', { email: 'mg@cpa.example', roles: ['manager'] });
    const manager = (await login(t.app, 'cpa', 'mg@cpa.example')).access_token;
    await seedUser(t, 'cpa', { email: 'vw@cpa.example', roles: ['viewer'] });
    const viewer = (await login(t.app, 'cpa', 'vw@cpa.example')).access_token;
    const admin = t.admins.cpa.id;
    expect((await refusedAlike('PUT', `users/${target.id}/roles`, viewer, { roles: ['user'] })).code).toBe('permission.denied');
    expect((await refusedAlike('PUT', `users/${mgr.id}/roles`, manager, { roles: ['viewer'] })).code).toBe('permission.self_change');
    expect((await refusedAlike('PUT', `users/${admin}/roles`, manager, { roles: ['viewer'] })).code).toBe('permission.outranked');
    expect((await refusedAlike('PUT', `users/${target.id}/roles`, manager, { roles: ['admin'] })).code).toBe('permission.not_held');
    expect((await refusedAlike('PUT', `users/${target.id}/roles`, t.tokens.cpa, { roles: ['nobody'] })).status).toBe(400);
    expect((await refusedAlike('PUT', `users/${admin}/permissions/notes.read`, manager, { effect: 'deny' })).code).toBe('permission.outranked');
    expect((await refusedAlike('PUT', `users/${target.id}/permissions/webhooks.read`, manager, { effect: 'allow' })).code).toBe('permission.not_held');
    expect((await refusedAlike('PUT', `users/${target.id}/permissions/nope.read`, t.tokens.cpa, { effect: 'allow' })).status).toBe(400);
    expect((await refusedAlike('PUT', `users/${target.id}/permissions/notes.read`, t.tokens.cpa, { effect: 'allow', expires_at: '2001-01-01T00:00:00Z' })).status).toBe(400);
    expect((await refusedAlike('DELETE', `users/${target.id}/permissions/notes.read`, t.tokens.cpa)).code).toBe('override.not_found');
    expect((await refusedAlike('DELETE', `users/${admin}/permissions/notes.read`, t.tokens.cpa)).code).toBe('permission.self_change');
    expect((await refusedAlike('PUT', `users/${t.admins.cpb.id}/roles`, t.tokens.cpa, { roles: ['viewer'] })).code).toBe('user.not_found');
  });
});

describe('the dry_run parameter', () => {
  it('takes true or false only: anything else is a 400 naming it', async () => {
    const user = await seedUser(t, 'cpa', { email: 'flag@cpa.example', roles: ['viewer'] });
    for (const value of ['yes', '1', '', 'TRUE']) {
      const res = await call('PUT', `users/${user.id}/roles?dry_run=${value}`, t.tokens.cpa, { roles: ['user'] });
      expect(res.statusCode, value).toBe(400);
      expect(res.json().code).toBe('request.invalid');
      expect(res.json().errors.map((e: { field: string }) => e.field)).toEqual(['querystring.dry_run']);
    }
    const state = await stateOf('cpa');
    const res = await call('PUT', `users/${user.id}/roles?dry_run=false`, t.tokens.cpa, { roles: ['user'] });
    expect(res.statusCode).toBe(200);
    expect(res.json().roles).toEqual(['user']);
    expect((await stateOf('cpa')).audit).toBe(state.audit + 1);
  });

  it('is in the OpenAPI document of each previewable route, with the preview as a 200 answer', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    const path = '/api/v1/tenants/{tenant_slug}';
    const routes = [
      ['put', `${path}/roles/{role_id}`],
      ['patch', `${path}/roles/{role_id}`],
      ['delete', `${path}/roles/{role_id}`],
      ['put', `${path}/users/{user_id}/roles`],
      ['put', `${path}/users/{user_id}/permissions/{permission}`],
      ['delete', `${path}/users/{user_id}/permissions/{permission}`],
    ] as const;
    for (const [method, route] of routes) {
      const op = doc.paths[route][method];
      expect(op.parameters.find((p: { name: string }) => p.name === 'dry_run'), `${method} ${route}`).toMatchObject({ in: 'query', required: false, schema: { type: 'boolean' } });
      expect(JSON.stringify(op.responses['200']), `${method} ${route}`).toMatch(/ChangePreview|total_affected/);
    }
    expect(doc.components.schemas.ChangePreview.required).toEqual(['dry_run', 'total_affected', 'affected']);
  });
});

describe('GraphQL', () => {
  const gql = async (token: string, query: string, variables: Record<string, unknown>) =>
    (await t.app.inject({ method: 'POST', url: '/api/v1/tenants/cpa/graphql', headers: bearer(token), payload: { query, variables } })).json() as {
      data: Record<string, unknown> | null;
      errors?: { extensions: Record<string, unknown> }[];
    };
  const PREVIEW = 'mutation ($id: ID!, $roles: [String!]!) { previewUserRoles(id: $id, roles: $roles) { dryRun totalAffected affected { userId email gained lost } } }';

  it('previewUserRoles answers what setUserRoles would do, keeps nothing, and refuses alike', async () => {
    const user = await seedUser(t, 'cpa', { email: 'gql@cpa.example', roles: ['viewer'] });
    const state = await stateOf('cpa');
    const rest = (await call('PUT', dry(`users/${user.id}/roles`), t.tokens.cpa, { roles: ['user'] })).json();
    const graph = await gql(t.tokens.cpa, PREVIEW, { id: user.id, roles: ['user'] });
    expect(graph.errors).toBeUndefined();
    expect(graph.data!.previewUserRoles).toEqual({
      dryRun: true,
      totalAffected: 1,
      affected: rest.affected.map((u: { user_id: string; email: string; gained: string[]; lost: string[] }) => ({ userId: u.user_id, email: u.email, gained: u.gained, lost: u.lost })),
    });
    expect(await stateOf('cpa')).toEqual(state);

    await seedUser(t, 'cpa', { email: 'gqlm@cpa.example', roles: ['manager'] });
    const manager = (await login(t.app, 'cpa', 'gqlm@cpa.example')).access_token;
    const refused = await gql(manager, PREVIEW, { id: t.admins.cpa.id, roles: ['viewer'] });
    expect(refused.errors![0]!.extensions).toMatchObject({ problem: 'permission.outranked' });
    const real = await gql(manager, 'mutation ($id: ID!, $roles: [String!]!) { setUserRoles(id: $id, roles: $roles) { id } }', { id: t.admins.cpa.id, roles: ['viewer'] });
    expect(real.errors![0]!.extensions).toMatchObject({ problem: 'permission.outranked' });
  });
});
