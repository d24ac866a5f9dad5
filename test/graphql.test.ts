import { readFile, readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { printSchema } from 'graphql';
import pg from 'pg';
import WebSocket from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/** SPEC §12: GraphQL over the same services as REST. Two tenants. */
const t = useTenants(['ga', 'gb']);

const ROOT = path.resolve(import.meta.dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- GraphQL answers are read field by field
type Json = any;

async function gql(slug: string, token: string | undefined, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/graphql`, headers: { ...(token ? bearer(token) : {}), ...headers }, payload: { query, variables } });
  return { status: res.statusCode, body: res.json() as { data: Record<string, Json> | null; errors?: { message: string; path?: string[]; extensions: Record<string, Json> }[] }, headers: res.headers };
}

const rest = async (slug: string, token: string, url: string) => (await t.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/${url}`, headers: bearer(token) })).json();

describe('queries answer what REST answers, in each tenant', () => {
  it('me, user, users, roles, teams, settings, auditLogs, notes, tasks, search', async () => {
    const ada = await seedUser(t, 'ga', { email: 'ada@ga.example', roles: ['manager'], username: 'ada' });
    await seedUser(t, 'gb', { email: 'ada@gb.example', roles: ['user'] });
    const team = (await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/teams', headers: bearer(t.tokens.ga), payload: { name: 'Analysts' } })).json();
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/tenants/ga/teams/${team.id}/members/${ada.id}`, headers: bearer(t.tokens.ga), payload: { role: 'member' } })).statusCode).toBeLessThan(300);
    const note = (await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/notes', headers: bearer(t.tokens.ga), payload: { title: 'Quarterly review', content: 'Numbers look fine', notable_type: 'users', notable_id: ada.id } })).json();

    const { body } = await gql(
      'ga',
      t.tokens.ga,
      `query ($id: ID!, $team: ID!) {
        me { email roles }
        user(id: $id) { id email username firstName roles teams { id name } createdAt updatedAt status isEmailVerified }
        users(pageSize: 50, sort: "email") { total page pageSize items { id email roles } }
        roles { name permissions deniedPermissions isSystem priority }
        team(id: $team) { id name parentTeamId }
        teams { total items { name } }
        settings { key value type }
        auditLogs(pageSize: 5, action: "notes.create") { total items { action entityId seq after } }
        notes(targetType: "users", targetId: $id) { total items { id title content targetType targetId } }
        tasks { total }
        search(q: "quarterly") { total items { type id title } }
      }`,
      { id: ada.id, team: team.id },
    );
    expect(body.errors).toBeUndefined();
    const d = body.data!;
    const restUser = await rest('ga', t.tokens.ga, `users/${ada.id}`);
    expect(d.user).toMatchObject({ id: restUser.id, email: restUser.email, username: 'ada', roles: restUser.roles, createdAt: restUser.created_at, updatedAt: restUser.updated_at, status: 'active', isEmailVerified: restUser.is_email_verified });
    expect(d.user.teams).toEqual([{ id: team.id, name: 'Analysts' }]);
    const restUsers = await rest('ga', t.tokens.ga, 'users?page_size=50&sort=email');
    expect(d.users).toMatchObject({ total: restUsers.total, page: 1, pageSize: 50 });
    expect(d.users.items.map((u: { email: string }) => u.email)).toEqual(restUsers.items.map((u: { email: string }) => u.email));
    expect(d.users.items.some((u: { email: string }) => u.email.endsWith('gb.example'))).toBe(false);
    const restRoles = await rest('ga', t.tokens.ga, 'roles?page_size=100');
    expect(d.roles.map((r: { name: string }) => r.name).sort()).toEqual(restRoles.items.map((r: { name: string }) => r.name).sort());
    expect(d.team).toEqual({ id: team.id, name: 'Analysts', parentTeamId: null });
    expect(d.settings.find((s: { key: string }) => s.key === 'password.min_length')).toEqual({ key: 'password.min_length', value: 12, type: 'number' });
    expect(d.auditLogs.items[0]).toMatchObject({ action: 'notes.create', entityId: note.id });
    expect(d.notes).toEqual({ total: 1, items: [{ id: note.id, title: 'Quarterly review', content: 'Numbers look fine', targetType: 'users', targetId: ada.id }] });
    expect(d.tasks.total).toBe(0);
    expect(d.search.items).toContainEqual(expect.objectContaining({ type: 'notes', id: note.id }));

    // The other tenant sees none of it.
    const other = await gql('gb', t.tokens.gb, 'query ($id: ID!) { user(id: $id) { id } notes { total } }', { id: ada.id });
    expect(other.body.data).toEqual({ user: null, notes: { total: 0 } });
  });
});

describe('mutations go through the same services', () => {
  it('create, update, roles, delete a user; create a role, a team, a note; update a setting; each audited as REST', async () => {
    const created = await gql('ga', t.tokens.ga, 'mutation { createUser(input: { email: "Grace@ga.example", password: "a long enough passphrase", firstName: "Grace", roles: ["user"] }) { id email firstName roles } }');
    expect(created.body.errors).toBeUndefined();
    const grace = created.body.data!.createUser;
    expect(grace).toMatchObject({ email: 'Grace@ga.example', firstName: 'Grace', roles: ['user'] });
    expect((await rest('ga', t.tokens.ga, `users/${grace.id}`)).email).toBe(grace.email);
    await login(t.app, 'ga', 'Grace@ga.example', 'a long enough passphrase');

    const updated = await gql('ga', t.tokens.ga, 'mutation ($id: ID!) { updateUser(id: $id, input: { lastName: "Hopper" }) { lastName } setUserRoles(id: $id, roles: ["viewer"]) { roles } }', { id: grace.id });
    expect(updated.body.data).toEqual({ updateUser: { lastName: 'Hopper' }, setUserRoles: { roles: ['viewer'] } });
    const role = await gql('ga', t.tokens.ga, 'mutation { createRole(input: { name: "auditor", permissions: ["audit_logs.read"] }) { name permissions isSystem } }');
    expect(role.body.data!.createRole).toEqual({ name: 'auditor', permissions: ['audit_logs.read'], isSystem: false });
    const team = await gql('ga', t.tokens.ga, 'mutation { createTeam(input: { name: "Platform" }) { name } }');
    expect(team.body.data!.createTeam).toEqual({ name: 'Platform' });
    const note = await gql('ga', t.tokens.ga, 'mutation ($id: ID) { createNote(input: { title: "Hello", content: "World", targetType: "users", targetId: $id }) { title targetType targetId } }', { id: grace.id });
    expect(note.body.data!.createNote).toEqual({ title: 'Hello', targetType: 'users', targetId: grace.id });
    const setting = await gql('ga', t.tokens.ga, 'mutation { updateSetting(key: "password.min_length", value: 14) { key value } }');
    expect(setting.body.data!.updateSetting).toEqual({ key: 'password.min_length', value: 14 });
    expect((await rest('ga', t.tokens.ga, 'settings/password.min_length')).value).toBe(14);
    expect((await rest('gb', t.tokens.gb, 'settings/password.min_length')).value).toBe(12);

    const deleted = await gql('ga', t.tokens.ga, 'mutation ($id: ID!) { deleteUser(id: $id) }', { id: grace.id });
    expect(deleted.body.data).toEqual({ deleteUser: true });
    const actions = (await rest('ga', t.tokens.ga, `audit-logs?entity_id=${grace.id}&page_size=20`)).items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['users.create', 'users.update', 'users.delete']));
    expect((await gql('ga', t.tokens.ga, 'mutation { updateSetting(key: "password.min_length", value: 12) { value } }')).body.data!.updateSetting.value).toBe(12);
  });
});

describe('errors', () => {
  it('carry extensions.code and the REST detail, translated, never a stack', async () => {
    const anonymous = await gql('ga', undefined, '{ me { id } }');
    expect(anonymous.body.errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', problem: 'auth.credentials_required' });
    const duplicate = await gql('ga', t.tokens.ga, 'mutation { createUser(input: { email: "admin@ga.example" }) { id } }');
    expect(duplicate.body.errors![0]).toMatchObject({ message: 'a user with this email already exists', path: ['createUser'], extensions: { code: 'CONFLICT', problem: 'user.email_taken' } });
    const invalid = await gql('ga', t.tokens.ga, 'mutation { createUser(input: { email: "x@ga.example", firstName: "' + 'x'.repeat(300) + '" }) { id } }', undefined, { 'accept-language': 'de' });
    expect(invalid.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', problem: 'request.invalid', errors: [{ field: 'firstName', reason: 'darf höchstens 200 Zeichen lang sein' }] });
    expect(invalid.headers['content-language']).toBe('de');
    const missing = await gql('ga', t.tokens.ga, '{ user(id: "00000000-0000-4000-8000-000000000000") { id } role(id: "nope") { id } }');
    expect(missing.body.data).toEqual({ user: null, role: null });
    expect(missing.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', errors: [{ field: 'id', reason: 'must be a UUID' }] });
    const unknown = await gql('ga', t.tokens.ga, '{ nothing }');
    expect(unknown.body.errors![0]!.extensions.code).toBe('BAD_USER_INPUT');
    for (const res of [anonymous, duplicate, invalid, missing, unknown]) expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });

  it('a field the caller may not read is FORBIDDEN on that field, audited like a REST refusal', async () => {
    const viewer = await seedUser(t, 'ga', { email: 'vera@ga.example', roles: ['viewer'] });
    const role = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/roles', headers: bearer(t.tokens.ga), payload: { name: 'notes_reader', permissions: ['notes.read'] } });
    expect(role.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/tenants/ga/users/${viewer.id}/roles`, headers: bearer(t.tokens.ga), payload: { roles: ['notes_reader'] } })).statusCode).toBe(200);
    const session = await login(t.app, 'ga', viewer.email);
    for (const [query, field] of [['{ roles { name } }', 'roles'], ['{ settings { key } }', 'settings']] as const) {
      const res = await gql('ga', session.access_token, query);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ data: null, errors: [{ path: [field], extensions: { code: 'FORBIDDEN', problem: 'permission.denied' } }] });
    }
    const mine = await gql('ga', session.access_token, '{ me { email } }');
    expect(mine.body.data).toEqual({ me: { email: viewer.email } });
    // The other fields are answered; the refused one is an error on its path, not a silent null.
    const partial = await gql('ga', session.access_token, 'query ($id: ID!) { me { email } notes { total } user(id: $id) { email } }', { id: viewer.id });
    expect(partial.status).toBe(200);
    expect(partial.body.data).toEqual({ me: { email: viewer.email }, notes: { total: expect.any(Number) }, user: null });
    expect(partial.body.errors).toEqual([expect.objectContaining({ path: ['user'], extensions: expect.objectContaining({ code: 'FORBIDDEN', problem: 'permission.denied' }) })]);
    const denied = (await rest('ga', t.tokens.ga, `audit-logs?action=auth.permission_denied&actor_user_id=${viewer.id}`)).items;
    expect(denied.map((e: { metadata: { permission: string } }) => e.metadata.permission)).toEqual(expect.arrayContaining(['roles.read', 'settings.read', 'users.read']));
    // Teams on a user need teams.read: an API key holding users.read only gets the users and a FORBIDDEN per teams field.
    const key = (await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/me/api-keys', headers: bearer(t.tokens.ga), payload: { name: 'users only', permissions: ['users.read'] } })).json();
    const keyed = await gql('ga', undefined, '{ users(pageSize: 2) { items { email teams { name } } } }', undefined, { 'x-api-key': key.key });
    expect(keyed.body.data!.users.items).toHaveLength(2);
    expect(keyed.body.data!.users.items.every((u: { email: string; teams: unknown }) => u.email && u.teams === null)).toBe(true);
    expect(keyed.body.errors!.every((e) => e.extensions.code === 'FORBIDDEN' && e.path![e.path!.length - 1] === 'teams')).toBe(true);
  });
});

describe('batching and limits', () => {
  afterEach(() => vi.restoreAllMocks());

  it('users { items { roles teams { name } } } runs the same number of statements for 5 users as for 50', async () => {
    for (let i = 0; i < 50; i++) await seedUser(t, 'gb', { email: `batch${i}@gb.example` });
    const original = pg.Client.prototype.query;
    const count = async (pageSize: number) => {
      const texts: string[] = [];
      vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
        const q = args[0] as string | { text?: string };
        const text = typeof q === 'string' ? q : (q?.text ?? '');
        if (text.includes('tenant_gb')) texts.push(text);
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      } as never);
      const res = await gql('gb', t.tokens.gb, `{ users(pageSize: ${pageSize}) { items { email roles teams { name } } } }`);
      vi.restoreAllMocks();
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.users.items).toHaveLength(pageSize);
      return texts.filter((s) => !/outbox|webhook/.test(s));
    };
    const five = await count(5);
    const fifty = await count(50);
    expect(fifty.length).toBe(five.length);
    expect(fifty.filter((s) => s.includes('team_members'))).toHaveLength(1);
  });

  it('refuses an operation past the depth or cost limit before running it, with a clear message', async () => {
    const costly = await gql('ga', t.tokens.ga, '{ a: users(pageSize: 100) { items { email teams { name description createdAt } } } b: users(pageSize: 100) { items { email teams { name description createdAt } } } }');
    expect(costly.body.data).toBeFalsy();
    expect(costly.body.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(costly.body.errors![0]!.message).toMatch(/costs [\d,]+, over the limit of 5,000/);
    const german = await gql('ga', t.tokens.ga, '{ a: users(pageSize: 100) { items { email teams { name description createdAt } } } b: users(pageSize: 100) { items { email teams { name description createdAt } } } }', undefined, { 'accept-language': 'de' });
    expect(german.body.errors![0]!.message).toMatch(/überschreitet die Grenze von 5\.000/);
    const deep = await gql('ga', t.tokens.ga, '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }');
    expect(deep.body.errors![0]!.message).toMatch(/depth/);
  });
});

describe('abuse', () => {
  it('aliases cannot multiply refusals, lookups or writes; a syntax tree is not a query; odd operations are 4xx', async () => {
    const user = await seedUser(t, 'ga', { email: 'alias@ga.example', roles: ['viewer'] });
    const role = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/roles', headers: bearer(t.tokens.ga), payload: { name: 'tasks_only', permissions: ['tasks.read'] } });
    expect(role.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/tenants/ga/users/${user.id}/roles`, headers: bearer(t.tokens.ga), payload: { roles: ['tasks_only'] } })).statusCode).toBe(200);
    const token = (await login(t.app, 'ga', user.email)).access_token;
    const denials = async () => (await rest('ga', t.tokens.ga, `audit-logs?action=auth.permission_denied&actor_user_id=${user.id}`)).total as number;
    const before = await denials();
    const aliases = Array.from({ length: 40 }, (_, i) => `r${i}: role(id: "00000000-0000-4000-8000-00000000000${i % 10}") { id }`).join(' ');
    const refused = await gql('ga', token, `{ ${aliases} }`);
    expect(refused.body.errors).toHaveLength(40);
    expect(refused.body.errors!.every((e) => e.extensions.code === 'FORBIDDEN')).toBe(true);
    expect(await denials()).toBe(before + 1);

    const lookups = await gql('ga', token, `{ ${Array.from({ length: 501 }, (_, i) => `m${i}: me { id }`).join(' ')} }`);
    expect(lookups.status).toBe(400);
    expect(lookups.body.errors![0]!.message).toMatch(/over the limit of 5,000/);
    const writes = await gql('ga', t.tokens.ga, `mutation { ${Array.from({ length: 51 }, (_, i) => `c${i}: createTeam(input: { name: "t${i}" }) { id }`).join(' ')} }`);
    expect(writes.body.errors![0]!.message).toMatch(/over the limit of 5,000/);
    expect((await rest('ga', t.tokens.ga, 'teams?search=t1')).total).toBe(0);

    const tree = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/ga/graphql', headers: bearer(t.tokens.ga), payload: { query: JSON.stringify({ kind: 'Document', definitions: [] }) } });
    expect(tree.json().errors[0].extensions.code).toBe('BAD_USER_INPUT');
    const overHttp = await gql('ga', t.tokens.ga, 'subscription { events { id } }');
    expect(overHttp.status).toBeLessThan(500);
    expect(overHttp.body.errors![0]!.extensions.code).toBe('BAD_USER_INPUT');
    const two = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/ga/graphql?query=${encodeURIComponent('query a { me { id } } query b { me { email } }')}`, headers: bearer(t.tokens.ga) });
    expect(two.statusCode).toBe(400);
    expect(two.json().errors[0].extensions.code).toBe('BAD_USER_INPUT');
    const named = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/ga/graphql?operationName=b&query=${encodeURIComponent('query a { me { id } } query b { me { email } }')}`, headers: bearer(t.tokens.ga) });
    expect(named.json()).toEqual({ data: { me: { email: 'admin@ga.example' } } });
    const roles = await gql('ga', t.tokens.ga, 'mutation ($id: ID!, $roles: [String!]!) { setUserRoles(id: $id, roles: $roles) { id } }', { id: user.id, roles: Array.from({ length: 51 }, (_, i) => `r${i}`) });
    expect(roles.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', errors: [{ field: 'roles' }] });
  });
});

describe('GraphiQL, introspection and GET outside production', () => {
  it('serves GraphiQL, answers introspection, and runs a query sent by GET (not a mutation)', async () => {
    const ide = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/ga/graphiql' });
    expect(ide.statusCode).toBe(200);
    expect(ide.headers['content-type']).toMatch(/text\/html/);
    expect((await gql('ga', t.tokens.ga, '{ __schema { queryType { name } } }')).body.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    const get = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/ga/graphql?query=${encodeURIComponent('{ me { email } }')}`, headers: bearer(t.tokens.ga) });
    expect(get.json()).toEqual({ data: { me: { email: 'admin@ga.example' } } });
    const mutation = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/ga/graphql?query=${encodeURIComponent('mutation { deleteUser(id: "00000000-0000-4000-8000-000000000000") }')}`, headers: bearer(t.tokens.ga) });
    expect(mutation.json().errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe('in production', () => {
  const p = useTenants(['gpa', 'gpb'], { production: true });
  it('has no GraphiQL and refuses introspection, and still answers queries', async () => {
    expect((await p.app.inject({ method: 'GET', url: '/api/v1/tenants/gpa/graphiql' })).statusCode).toBe(404);
    const introspection = await p.app.inject({ method: 'POST', url: '/api/v1/tenants/gpa/graphql', headers: bearer(p.tokens.gpa), payload: { query: '{ __schema { queryType { name } } }' } });
    expect(introspection.json().errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(introspection.json().errors[0].message).toMatch(/introspection/i);
    const me = await p.app.inject({ method: 'POST', url: '/api/v1/tenants/gpa/graphql', headers: bearer(p.tokens.gpa), payload: { query: '{ me { email } }' } });
    expect(me.json()).toEqual({ data: { me: { email: 'admin@gpa.example' } } });
  });
});

describe('the schema', () => {
  it('docs/schema.graphql is the running schema', async () => {
    const { typeDefs } = await import('../src/graphql/schema.js');
    const { buildSchema } = await import('graphql');
    expect(await readFile(path.join(ROOT, 'docs/schema.graphql'), 'utf8')).toBe(`${printSchema(buildSchema(typeDefs))}\n`);
  });

  it('resolvers reach the data only through services: no database import in src/graphql', async () => {
    for (const file of await readdir(path.join(ROOT, 'src/graphql'))) {
      const source = await readFile(path.join(ROOT, 'src/graphql', file), 'utf8');
      expect(source, file).not.toMatch(/from '(\.\.\/)+db\/|from 'kysely'|from 'pg'|tenantDb\(|selectFrom\(|insertInto\(|updateTable\(/);
    }
  });
});

describe('subscriptions over graphql-transport-ws', () => {
  const s = useTenants(['gsa', 'gsb'], { events: { pollMs: 100 } });

  /** A graphql-transport-ws client that keeps what it got. */
  async function connect(url: string, payload: Record<string, unknown>) {
    const ws = new WebSocket(url, 'graphql-transport-ws');
    const got: { type: string; id?: string; payload?: Json }[] = [];
    ws.on('message', (data) => got.push(JSON.parse(data.toString())));
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send(JSON.stringify({ type: 'connection_init', payload }));
    const until = async (test: () => boolean, ms = 5_000) => {
      const end = Date.now() + ms;
      while (!test()) {
        if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(got).slice(0, 1500)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until(() => got.some((m) => m.type === 'connection_ack'));
    return { ws, got, until, subscribe: (id: string, query: string) => ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } })) };
  }

  it('delivers user.created after a mutation, only to callers who may read users, only in their tenant', async () => {
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (s.app.server.address() as AddressInfo).port;
    const url = (slug: string) => `ws://127.0.0.1:${port}/api/v1/tenants/${slug}/graphql`;
    const viewer = await seedUser(s, 'gsa', { email: 'only-notes@gsa.example', roles: ['viewer'] });
    const role = await s.app.inject({ method: 'POST', url: '/api/v1/tenants/gsa/roles', headers: bearer(s.tokens.gsa), payload: { name: 'notes_only', permissions: ['notes.read'] } });
    expect(role.statusCode).toBe(201);
    expect((await s.app.inject({ method: 'PUT', url: `/api/v1/tenants/gsa/users/${viewer.id}/roles`, headers: bearer(s.tokens.gsa), payload: { roles: ['notes_only'] } })).statusCode).toBe(200);
    const viewerToken = (await login(s.app, 'gsa', viewer.email)).access_token;

    const admin = await connect(url('gsa'), { authorization: `Bearer ${s.tokens.gsa}` });
    const limited = await connect(url('gsa'), { authorization: `Bearer ${viewerToken}` });
    const neighbour = await connect(url('gsb'), { authorization: `Bearer ${s.tokens.gsb}` });
    const anonymous = await connect(url('gsa'), {});
    const query = 'subscription { events(types: ["user.*", "note.created"]) { type tenantSlug data } }';
    for (const c of [admin, limited, neighbour, anonymous]) c.subscribe('1', query);
    await anonymous.until(() => anonymous.got.some((m) => m.type === 'error' || m.type === 'next'));
    expect(anonymous.got.find((m) => m.type === 'error')!.payload[0].extensions.code).toBe('UNAUTHENTICATED');
    await new Promise((r) => setTimeout(r, 300));

    const res = await s.app.inject({ method: 'POST', url: '/api/v1/tenants/gsa/graphql', headers: bearer(s.tokens.gsa), payload: { query: 'mutation { createUser(input: { email: "sub2@gsa.example" }) { id } createNote(input: { title: "N", content: "C" }) { id } }' } });
    expect(res.json().errors).toBeUndefined();
    await admin.until(() => admin.got.filter((m) => m.type === 'next').length >= 2);
    const next = admin.got.filter((m) => m.type === 'next').map((m) => m.payload.data.events);
    expect(next).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'user.created', tenantSlug: 'gsa', data: expect.objectContaining({ email: 'sub2@gsa.example' }) })]));
    await limited.until(() => limited.got.some((m) => m.type === 'next'));
    await new Promise((r) => setTimeout(r, 500));
    expect(limited.got.filter((m) => m.type === 'next').map((m) => m.payload.data.events.type)).toEqual(['note.created']);
    expect(neighbour.got.filter((m) => m.type === 'next')).toEqual([]);
    // The anonymous socket is closed after its refusal; a subscription is validated like a query.
    await anonymous.until(() => anonymous.ws.readyState === WebSocket.CLOSED);
    admin.subscribe('2', 'subscription { a: events { id } b: events { id } }');
    admin.subscribe('3', 'subscription { events { nothing } }');
    await admin.until(() => ['2', '3'].every((id) => admin.got.some((m) => m.type === 'error' && m.id === id)));
    for (const c of [admin, limited, neighbour]) c.ws.close();
  });
});
