import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createClient, type Answer, type Client, type Problem } from '@system-service/client';
import { beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { CLIENT_TYPES, clientTypes } from '../scripts/openapi.js';
import { useTenants } from './support/fixture.js';
import { PASSWORD } from './support/tenants.js';

/** The typed client package (packages/client) against the service listening on a port. Two tenants. */
const t = useTenants(['ca', 'cb'], { login: false });

const ROOT = path.resolve(import.meta.dirname, '..');
let baseUrl: string;

beforeAll(async () => {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});

/** The first line where two texts differ, with its neighbours, or undefined when they are equal. */
function firstDifference(a: string, b: string): string | undefined {
  if (a === b) return undefined;
  const [x, y] = [a.split('\n'), b.split('\n')];
  const i = x.findIndex((line, n) => line !== y[n]);
  const at = i === -1 ? x.length : i;
  return `line ${at + 1}:\n- ${x.slice(at, at + 3).join('\n- ')}\n+ ${y.slice(at, at + 3).join('\n+ ')}`;
}

/** Logs a tenant's admin in through the client; a client with its access token. */
async function signIn(slug: 'ca' | 'cb'): Promise<Client> {
  const anonymous = createClient({ baseUrl });
  const { data, error, response } = await anonymous.POST('/api/v1/tenants/{tenant_slug}/auth/login', {
    params: { path: { tenant_slug: slug } },
    body: { email: t.admins[slug].email, password: PASSWORD },
  });
  expect(error, `login ${slug}`).toBeUndefined();
  expect(response.status).toBe(200);
  // A user with a second factor would get `mfa_required` instead: the answer is a union, narrowed here.
  if (!data || !('access_token' in data)) throw new Error(`login ${slug}: no tokens`);
  expectTypeOf(data.access_token).toEqualTypeOf<string>();
  return createClient({ baseUrl, token: data.access_token });
}

describe('the committed client types', () => {
  it('are generated from the current OpenAPI document (else: npm run client:generate)', async () => {
    const committed = await readFile(path.join(ROOT, CLIENT_TYPES), 'utf8');
    const fresh = await clientTypes(t.app.swagger() as Parameters<typeof clientTypes>[0]);
    expect(firstDifference(committed, fresh), `${CLIENT_TYPES} is out of date: run npm run client:generate`).toBeUndefined();
  });
});

describe('the client against the running service', () => {
  it('logs in, lists, creates once under an Idempotency-Key, updates under If-Match, and reads problems typed', async () => {
    const ca = await signIn('ca');
    const tenant = { tenant_slug: 'ca' };

    const users = await ca.GET('/api/v1/tenants/{tenant_slug}/users', { params: { path: tenant, query: { page_size: 10, sort: 'email' } } });
    expect(users.response.status).toBe(200);
    expect(users.data).toMatchObject({ total: 1, page: 1, page_size: 10 });
    expect(users.data!.items.map((u) => u.email)).toEqual([t.admins.ca.email]);

    // The same key and body: one team, the first answer twice.
    const key = randomUUID();
    const create = (name: string) => ca.POST('/api/v1/tenants/{tenant_slug}/teams', { params: { path: tenant, header: { 'idempotency-key': key } }, body: { name } });
    const first = await create('Support');
    const again = await create('Support');
    expect(first.response.status).toBe(201);
    expect(again.response.status).toBe(201);
    const team: Answer<'createTeam'> = first.data!;
    expectTypeOf<Answer<'createTeam'>>().toHaveProperty('id');
    expect(again.data).toEqual(team);
    expect(first.response.headers.get('location')).toBe(`/api/v1/tenants/ca/teams/${team.id}`);
    const teams = await ca.GET('/api/v1/tenants/{tenant_slug}/teams', { params: { path: tenant } });
    expect(teams.data!.items.map((x) => x.name)).toEqual(['Support']);

    // The same key with another body is refused, as a problem.
    const reused = await create('Sales');
    expect(reused.response.status).toBe(422);
    expectTypeOf(reused.error).toEqualTypeOf<Problem | undefined>();
    expect(reused.error).toMatchObject({ status: 422, code: 'idempotency.key_reused' });
    expect(reused.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    // A change under the current ETag succeeds and moves it; the old one is then stale: 412.
    const etag = first.response.headers.get('etag')!;
    expect(etag).toMatch(/^"\d+"$/);
    const params = { path: { ...tenant, team_id: team.id }, header: { 'if-match': etag } };
    const renamed = await ca.PATCH('/api/v1/tenants/{tenant_slug}/teams/{team_id}', { params, body: { name: 'Support desk' } });
    expect(renamed.response.status).toBe(200);
    expect(renamed.data).toMatchObject({ id: team.id, name: 'Support desk' });
    expect(renamed.response.headers.get('etag')).not.toBe(etag);
    const stale = await ca.PATCH('/api/v1/tenants/{tenant_slug}/teams/{team_id}', { params: { ...params, header: { ...params.header, 'x-request-id': 'client-stale-1' } }, body: { name: 'Helpdesk' } });
    expect(stale.response.status).toBe(412);
    expect(stale.data).toBeUndefined();
    expect(stale.error).toMatchObject({ status: 412, code: 'request.version_mismatch', request_id: 'client-stale-1' });
    expect(stale.response.headers.get('x-request-id')).toBe('client-stale-1');
    const current = await ca.GET('/api/v1/tenants/{tenant_slug}/teams/{team_id}', { params: { path: params.path } });
    expect(current.data!.name).toBe('Support desk');
  });

  it('keeps the tenants apart: a token of one is refused on the other, rows and keys stay in their tenant', async () => {
    const ca = await signIn('ca');
    const cb = await signIn('cb');
    const key = randomUUID();
    const note = await ca.POST('/api/v1/tenants/{tenant_slug}/notes', { params: { path: { tenant_slug: 'ca' }, header: { 'idempotency-key': key } }, body: { title: 'Renewal call', content: 'Tenant A only' } });
    expect(note.response.status).toBe(201);
    const id = note.data!.id;

    // Tenant A's token on tenant B's routes: 403, whatever the row.
    const cross = await ca.GET('/api/v1/tenants/{tenant_slug}/notes/{id}', { params: { path: { tenant_slug: 'cb', id } } });
    expect(cross.response.status).toBe(403);
    expect(cross.error?.code).toBe('auth.wrong_tenant');
    const crossList = await ca.GET('/api/v1/tenants/{tenant_slug}/notes', { params: { path: { tenant_slug: 'cb' } } });
    expect(crossList.error?.code).toBe('auth.wrong_tenant');

    // Tenant B's own token does not find tenant A's row, and lists none of it.
    const hidden = await cb.GET('/api/v1/tenants/{tenant_slug}/notes/{id}', { params: { path: { tenant_slug: 'cb', id } } });
    expect(hidden.response.status).toBe(404);
    expect(hidden.error?.code).toBe('record.not_found');
    const listB = await cb.GET('/api/v1/tenants/{tenant_slug}/notes', { params: { path: { tenant_slug: 'cb' } } });
    expect(listB.data).toMatchObject({ total: 0, items: [] });

    // The same Idempotency-Key in tenant B is B's own: a new row, not A's answer.
    const noteB = await cb.POST('/api/v1/tenants/{tenant_slug}/notes', { params: { path: { tenant_slug: 'cb' }, header: { 'idempotency-key': key } }, body: { title: 'Renewal call', content: 'Tenant A only' } });
    expect(noteB.response.status).toBe(201);
    expect(noteB.data!.id).not.toBe(id);

    // No credentials at all: 401, as a problem.
    const anonymous = await createClient({ baseUrl }).GET('/api/v1/tenants/{tenant_slug}/notes', { params: { path: { tenant_slug: 'ca' } } });
    expect(anonymous.response.status).toBe(401);
    expect(anonymous.error?.code).toBe('auth.credentials_required');
  });

  it('takes the token from a function at each request', async () => {
    const session: { token?: string } = {};
    const client = createClient({ baseUrl, token: () => session.token });
    expect((await client.GET('/api/v1/tenants/{tenant_slug}/me', { params: { path: { tenant_slug: 'cb' } } })).response.status).toBe(401);
    const login = await createClient({ baseUrl }).POST('/api/v1/tenants/{tenant_slug}/auth/login', { params: { path: { tenant_slug: 'cb' } }, body: { email: t.admins.cb.email, password: PASSWORD } });
    session.token = login.data && 'access_token' in login.data ? login.data.access_token : undefined;
    const me = await client.GET('/api/v1/tenants/{tenant_slug}/me', { params: { path: { tenant_slug: 'cb' } } });
    expect(me.data?.email).toBe(t.admins.cb.email);
  });
});
