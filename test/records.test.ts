import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { caller, upload } from './support/records.js';
import { login, seedUser } from './support/tenants.js';

/*
 * The contract every extended resource shares (one suite, run for each of the eight): CRUD with
 * ETag/If-Match, Idempotency-Key, audit rows, soft delete and restore, a filter, viewer 403,
 * isolation between two tenants, and the polymorphic target rules.
 */

const t = useTenants(['ra', 'rb']);
let call: ReturnType<typeof caller>;
let viewer: string;
let member: string;

beforeAll(async () => {
  call = caller(t.app);
  await seedUser(t, 'ra', { email: 'viewer@ra.example', roles: ['viewer'] });
  const memberUser = await seedUser(t, 'ra', { email: 'member@ra.example', roles: ['user'] });
  viewer = (await login(t.app, 'ra', 'viewer@ra.example')).access_token;
  member = (await login(t.app, 'ra', 'member@ra.example')).access_token;
  // The user role writes every record but channel configs (their secrets): the member gets those two by override.
  for (const permission of ['channel_configs.create', 'channel_configs.update']) {
    const granted = await call(t.tokens.ra, 'PUT', `ra/users/${memberUser.id}/permissions/${permission}`, { effect: 'allow' });
    if (granted.statusCode !== 200) throw new Error(granted.body);
  }
});

interface Fixture {
  readonly path: string;
  readonly table: string;
  /** Prefix of the polymorphic pair, if any. */
  readonly target?: string;
  /** A valid create body; `n` makes values unique where the table needs it. */
  readonly body: (n: number) => Record<string, unknown>;
  /** A valid partial update and what the answer then shows. */
  readonly patch: Record<string, unknown>;
  /** Fields that make a create invalid (an enum out of range, a bad value), and the field the 400 names. */
  readonly invalid: Record<string, unknown>;
  readonly invalidField: string;
  /** Fields that make an inverted range, where the resource has one. */
  readonly inverted?: Record<string, unknown>;
  /** Two creates told apart by `query`: the first matches, the second does not. */
  readonly filter: { readonly match: Record<string, unknown>; readonly other: Record<string, unknown>; readonly query: string };
}

let counter = 0;
const FIXTURES: Fixture[] = [
  {
    path: 'notes',
    table: 'notes',
    target: 'notable',
    body: () => ({ title: 'Call back', content: 'About the renewal' }),
    patch: { priority: 'high', is_pinned: true },
    invalid: { priority: 'critical' },
    invalidField: 'priority',
    filter: { match: { priority: 'urgent' }, other: { priority: 'low' }, query: 'priority=urgent' },
  },
  {
    path: 'logacalls',
    table: 'logacalls',
    target: 'logacallable',
    body: () => ({ direction: 'inbound', phone_number: '+14155550100', called_at: '2026-03-01T10:00:00Z' }),
    patch: { outcome: 'answered', duration_seconds: 42 },
    invalid: { direction: 'sideways' },
    invalidField: 'direction',
    filter: { match: { direction: 'outbound' }, other: { direction: 'inbound' }, query: 'direction=outbound' },
  },
  {
    path: 'tasks',
    table: 'tasks',
    target: 'taskable',
    body: () => ({ title: 'Send the quote' }),
    patch: { status: 'in_progress', priority: 'high' },
    invalid: { status: 'blocked' },
    invalidField: 'status',
    filter: { match: { priority: 'urgent' }, other: { priority: 'low' }, query: 'priority=urgent' },
  },
  {
    path: 'attachments',
    table: 'attachments',
    target: 'attachable',
    body: (n) => ({ file_name: `report-${n}.txt` }),
    patch: { file_name: 'renamed.txt' },
    invalid: { attachable_type: 'roles', attachable_id: randomUUID() },
    invalidField: 'attachable_type',
    filter: { match: { file_name: 'alpha-plan.txt' }, other: { file_name: 'beta-plan.txt' }, query: 'search=alpha' },
  },
  {
    path: 'events',
    table: 'events',
    target: 'eventable',
    body: () => ({ title: 'Kick-off', starts_at: '2026-03-02T09:00:00Z', ends_at: '2026-03-02T10:00:00Z' }),
    patch: { location: 'Room 4', all_day: true },
    invalid: { rrule: 'FREQ=SOMETIMES' },
    invalidField: 'rrule',
    inverted: { starts_at: '2026-03-02T10:00:00Z', ends_at: '2026-03-02T09:00:00Z' },
    filter: { match: { all_day: true }, other: { all_day: false }, query: 'all_day=true' },
  },
  {
    path: 'carbon-footprints',
    table: 'carbon_footprints',
    body: () => ({ activity: 'Flights', quantity: 1200, unit: 'km', co2e_kg: 180.5, period_start: '2026-01-01', period_end: '2026-01-31' }),
    patch: { category: 'business travel', scope: 3 },
    invalid: { scope: 4 },
    invalidField: 'scope',
    inverted: { period_start: '2026-02-01', period_end: '2026-01-01' },
    filter: { match: { scope: 2 }, other: { scope: 1 }, query: 'scope=2' },
  },
  {
    path: 'channel-configs',
    table: 'channel_configs',
    body: (n) => ({ channel: 'webhook', name: `Hook ${n}`, config: { url: 'https://hooks.example.com/in' } }),
    patch: { is_enabled: false, name: 'Renamed hook' },
    invalid: { channel: 'pigeon' },
    invalidField: 'channel',
    filter: { match: { channel: 'slack', config: { bot_token: 'xoxb-1' } }, other: { channel: 'webhook' }, query: 'channel=slack' },
  },
  {
    path: 'reviews',
    table: 'reviews',
    target: 'reviewable',
    body: () => ({ rating: 5 }),
    patch: { rating: 4, title: 'Great service' },
    invalid: { rating: 6 },
    invalidField: 'rating',
    filter: { match: { rating: 2 }, other: { rating: 5 }, query: 'rating=2' },
  },
];

/** Creates a row of a fixture (multipart for attachments), as `token` in `slug`. */
function create(f: Fixture, token: string, slug: string, overrides: Record<string, unknown> = {}, headers: Record<string, string> = {}, n = ++counter): Promise<LightMyRequestResponse> {
  const body = { ...f.body(n), ...overrides };
  if (f.path !== 'attachments') return call(token, 'POST', `${slug}/${f.path}`, body, headers);
  const { file_name: name, ...fields } = body;
  return upload(t.app, token, `${slug}/attachments`, { name: String(name), type: 'text/plain', content: Buffer.from(`content ${n}`) }, fields as Record<string, string>, headers);
}

const ids = (res: LightMyRequestResponse) => (res.json().items as { id: string }[]).map((i) => i.id);

describe.each(FIXTURES)('$path', (f) => {
  it('creates, reads, lists, updates with If-Match, deletes softly and restores, with an audit row for each change', async () => {
    const created = await create(f, member, 'ra');
    expect(created.statusCode, created.body).toBe(201);
    const row = created.json();
    expect(created.headers.etag).toBe('"1"');
    expect(created.headers.location).toBe(`/api/v1/tenants/ra/${f.path}/${row.id}`);
    expect(row).toMatchObject({ id: expect.any(String), created_at: expect.any(String), updated_at: expect.any(String) });
    expect(row).not.toHaveProperty('version');
    expect(row).not.toHaveProperty('deleted_at');

    const got = await call(viewer, 'GET', `ra/${f.path}/${row.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(row);
    expect(ids(await call(viewer, 'GET', `ra/${f.path}?page_size=100`))).toContain(row.id);

    const patched = await call(member, 'PATCH', `ra/${f.path}/${row.id}`, f.patch, { 'if-match': '"1"' });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject(f.patch);
    expect(patched.headers.etag).toBe('"2"');
    expect((await call(member, 'PUT', `ra/${f.path}/${row.id}`, f.patch, { 'if-match': '"1"' })).statusCode).toBe(412);
    const put = await call(member, 'PUT', `ra/${f.path}/${row.id}`, {}, { 'if-match': '"2"' });
    expect(put.statusCode).toBe(200);
    expect(put.headers.etag).toBe('"3"');

    expect((await call(t.tokens.ra, 'DELETE', `ra/${f.path}/${row.id}`, undefined, { 'if-match': '"1"' })).statusCode).toBe(412);
    expect((await call(t.tokens.ra, 'DELETE', `ra/${f.path}/${row.id}`)).statusCode).toBe(204);
    expect((await call(t.tokens.ra, 'GET', `ra/${f.path}/${row.id}`)).statusCode).toBe(404);
    expect((await call(t.tokens.ra, 'PATCH', `ra/${f.path}/${row.id}`, f.patch)).statusCode).toBe(404);
    expect(ids(await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=100`))).not.toContain(row.id);
    // Soft: the row is still in the table.
    const stored = await tenantDb(t.db.database.db, 'tenant_ra').selectFrom(f.table as 'notes').select(['id', 'deleted_at']).where('id', '=', row.id).executeTakeFirst();
    expect(stored?.deleted_at).toBeInstanceOf(Date);

    const restored = await call(t.tokens.ra, 'POST', `ra/${f.path}/${row.id}/restore`);
    expect(restored.statusCode, restored.body).toBe(200);
    expect((await call(t.tokens.ra, 'POST', `ra/${f.path}/${row.id}/restore`)).statusCode).toBe(409);
    expect((await call(viewer, 'GET', `ra/${f.path}/${row.id}`)).statusCode).toBe(200);

    const audit = await call(t.tokens.ra, 'GET', `ra/audit-logs?entity_id=${row.id}&page_size=100`);
    const actions = (audit.json().items as { action: string; entity_type: string }[]).map((a) => a.action).sort();
    expect(actions).toEqual([`${f.table}.create`, `${f.table}.delete`, `${f.table}.restore`, `${f.table}.update`, `${f.table}.update`].sort());
  });

  it('replays a create with the same Idempotency-Key instead of making a second row', async () => {
    const key = `k-${randomUUID()}`;
    const n = ++counter;
    const first = await create(f, member, 'ra', {}, { 'idempotency-key': key }, n);
    expect(first.statusCode, first.body).toBe(201);
    const total = (await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=1`)).json().total;
    const replay = await create(f, member, 'ra', {}, { 'idempotency-key': key }, n);
    expect(replay.statusCode).toBe(201);
    expect(replay.json()).toEqual(first.json());
    expect((await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=1`)).json().total).toBe(total);
    // The same key with another request is refused.
    expect((await create(f, member, 'ra', f.filter.match, { 'idempotency-key': key }, n)).statusCode).toBe(422);
  });

  it('filters lists', async () => {
    const match = (await create(f, member, 'ra', f.filter.match)).json();
    const other = (await create(f, member, 'ra', f.filter.other)).json();
    const listed = await call(viewer, 'GET', `ra/${f.path}?${f.filter.query}&page_size=100`);
    expect(listed.statusCode, listed.body).toBe(200);
    expect(ids(listed)).toContain(match.id);
    expect(ids(listed)).not.toContain(other.id);
    expect(listed.json().items.length).toBe(listed.json().total);
    expect((await call(viewer, 'GET', `ra/${f.path}?sort=nonsense`)).statusCode).toBe(400);
    const page = (await call(viewer, 'GET', `ra/${f.path}?page=1&page_size=1`)).json();
    expect(page).toMatchObject({ page: 1, page_size: 1 });
    expect(page.items).toHaveLength(1);
    expect(page.total).toBeGreaterThanOrEqual(2);
  });

  it('lets a viewer read but not write', async () => {
    const row = (await create(f, member, 'ra')).json();
    expect((await call(viewer, 'GET', `ra/${f.path}/${row.id}`)).statusCode).toBe(200);
    expect((await create(f, viewer, 'ra')).statusCode).toBe(403);
    expect((await call(viewer, 'PATCH', `ra/${f.path}/${row.id}`, f.patch)).statusCode).toBe(403);
    expect((await call(viewer, 'DELETE', `ra/${f.path}/${row.id}`)).statusCode).toBe(403);
    expect((await call(viewer, 'POST', `ra/${f.path}/${row.id}/restore`)).statusCode).toBe(403);
    expect((await call(t.tokens.ra, 'GET', `ra/${f.path}/${row.id}`)).headers.etag).toBe('"1"');
  });

  it('keeps tenants apart', async () => {
    const row = (await create(f, member, 'ra')).json();
    const rowB = (await create(f, t.tokens.rb, 'rb')).json();
    expect((await call(t.tokens.rb, 'GET', `rb/${f.path}/${row.id}`)).statusCode).toBe(404);
    expect((await call(t.tokens.rb, 'PATCH', `rb/${f.path}/${row.id}`, f.patch)).statusCode).toBe(404);
    expect((await call(t.tokens.rb, 'DELETE', `rb/${f.path}/${row.id}`)).statusCode).toBe(404);
    expect(ids(await call(t.tokens.rb, 'GET', `rb/${f.path}?page_size=100`))).toEqual([rowB.id]);
    expect(ids(await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=100`))).not.toContain(rowB.id);
    // A token of one tenant does not open another.
    expect((await call(t.tokens.ra, 'GET', `rb/${f.path}/${rowB.id}`)).statusCode).toBe(403);
  });

  it('refuses bad input with a problem naming the field, and changes nothing', async () => {
    const before = (await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=1`)).json().total;
    const bad = await create(f, member, 'ra', f.invalid);
    expect(bad.statusCode, bad.body).toBe(400);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    expect(bad.json().errors.map((e: { field: string }) => e.field)).toEqual([f.invalidField]);
    if (f.inverted) {
      const inverted = await create(f, member, 'ra', f.inverted);
      expect(inverted.statusCode, inverted.body).toBe(400);
      expect(inverted.json().errors[0].field).toMatch(/end/);
    }
    if (f.path !== 'attachments') {
      expect((await call(member, 'POST', `ra/${f.path}`, { ...f.body(0), unknown_field: 1 })).statusCode).toBe(400);
    }
    expect((await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=1`)).json().total).toBe(before);
  });

  if (f.target) {
    const type = `${f.target}_type`;
    const id = `${f.target}_id`;

    it('takes a live target of the same tenant and filters by it', async () => {
      const team = (await call(t.tokens.ra, 'POST', 'ra/teams', { name: `Team ${randomUUID()}` })).json();
      const onUser = await create(f, member, 'ra', { [type]: 'users', [id]: t.admins.ra.id });
      expect(onUser.statusCode, onUser.body).toBe(201);
      expect(onUser.json()).toMatchObject({ [type]: 'users', [id]: t.admins.ra.id });
      const onTeam = (await create(f, member, 'ra', { [type]: 'teams', [id]: team.id })).json();
      const byTeam = await call(viewer, 'GET', `ra/${f.path}?${type}=teams&${id}=${team.id}`);
      expect(ids(byTeam)).toEqual([onTeam.id]);
      expect(ids(await call(viewer, 'GET', `ra/${f.path}?${type}=users&${id}=${t.admins.ra.id}&page_size=100`))).toContain(onUser.json().id);
    });

    it('refuses a dangling, foreign or unlisted target, or half a pair', async () => {
      const dangling = await create(f, member, 'ra', { [type]: 'users', [id]: randomUUID() });
      expect(dangling.statusCode).toBe(400);
      expect(dangling.json().errors).toEqual([{ field: id, reason: expect.stringContaining('no live row') }]);
      const foreign = await create(f, member, 'ra', { [type]: 'users', [id]: t.admins.rb.id });
      expect(foreign.statusCode).toBe(400);
      const roles = await tenantDb(t.db.database.db, 'tenant_ra').selectFrom('roles').select('id').executeTakeFirstOrThrow();
      const unlisted = await create(f, member, 'ra', { [type]: 'roles', [id]: roles.id });
      expect(unlisted.statusCode).toBe(400);
      expect(unlisted.json().errors.map((e: { field: string }) => e.field)).toContain(type);
      const half = await create(f, member, 'ra', { [type]: 'users' });
      expect(half.statusCode).toBe(400);
      expect(half.json().errors).toEqual([{ field: id, reason: expect.stringContaining('required') }]);
    });

    it('hides rows whose target is deleted, and shows them again when it is restored', async () => {
      const target = await seedUser(t, 'ra', { email: `target-${randomUUID()}@ra.example` });
      const row = (await create(f, member, 'ra', { [type]: 'users', [id]: target.id })).json();
      expect((await call(t.tokens.ra, 'DELETE', `ra/users/${target.id}`)).statusCode).toBe(204);
      expect((await call(t.tokens.ra, 'GET', `ra/${f.path}/${row.id}`)).statusCode).toBe(404);
      expect(ids(await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=100`))).not.toContain(row.id);
      // Hidden, not lost: still in the table, live.
      const stored = await tenantDb(t.db.database.db, 'tenant_ra').selectFrom(f.table as 'notes').select('deleted_at').where('id', '=', row.id).executeTakeFirst();
      expect(stored).toEqual({ deleted_at: null });
      expect((await call(t.tokens.ra, 'POST', `ra/users/${target.id}/restore`)).statusCode).toBe(200);
      expect((await call(t.tokens.ra, 'GET', `ra/${f.path}/${row.id}`)).statusCode).toBe(200);
      expect(ids(await call(t.tokens.ra, 'GET', `ra/${f.path}?page_size=100`))).toContain(row.id);
    });
  }
});
