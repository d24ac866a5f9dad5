import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedTenant, seedUser } from './support/tenants.js';

/**
 * For random changes on a small random tenant, a dry run answers exactly what the change then
 * does: each user's gained and lost permissions are the difference of the explain route's
 * `effective` before and after the real change; a refused dry run is refused as the change is;
 * and the dry run itself writes nothing. The suite's two tenants stay as they were.
 */
const t = useTenants(['cpp', 'cpq']);

const NAMES = ['*', 'users.*', 'users.read', 'users.update', 'roles.read', 'notes.*', 'notes.read', 'notes.create', 'notes.delete', 'audit_logs.read', 'teams.read'];
const CUSTOM = ['r1', 'r2', 'r3'] as const;
const ROLES = ['admin', 'manager', 'user', 'viewer', ...CUSTOM];
const USERS = ['u1', 'u2', 'u3'] as const;
type UserKey = (typeof USERS)[number];
type Actor = 'admin' | 'lead';

const names = fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 3 });
const entries = fc.record({ allow: names, deny: names }).map(({ allow, deny }) => ({ permissions: allow, denied_permissions: deny.filter((d) => !allow.includes(d)) }));
const priority = fc.integer({ min: 0, max: 200 });
const expiry = fc.option(fc.integer({ min: 1, max: 3 }).map((h) => new Date(Date.now() + h * 3_600_000).toISOString()), { nil: undefined });
const override = fc.record({ permission: fc.constantFrom(...NAMES), effect: fc.constantFrom('allow' as const, 'deny' as const), expires_at: expiry });

const world = fc.record({
  roles: fc.tuple(...CUSTOM.map(() => fc.record({ priority, entries }))),
  users: fc.tuple(...USERS.map(() => fc.record({ roles: fc.uniqueArray(fc.constantFrom(...ROLES), { maxLength: 2 }), overrides: fc.uniqueArray(override, { selector: (o) => o.permission, maxLength: 2 }) }))),
});
type World = typeof world extends fc.Arbitrary<infer W> ? W : never;

type Method = 'PUT' | 'PATCH' | 'DELETE';
type Op =
  | { kind: 'editRole'; method: 'PUT' | 'PATCH'; role: string; body: Record<string, unknown> }
  | { kind: 'deleteRole'; role: string }
  | { kind: 'setRoles'; user: UserKey; roles: string[] }
  | { kind: 'setOverride'; user: UserKey; permission: string; effect: 'allow' | 'deny'; expires_at?: string }
  | { kind: 'removeOverride'; user: UserKey; permission: string };

const user = fc.constantFrom(...USERS);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('editRole' as const),
    method: fc.constantFrom('PUT' as const, 'PATCH' as const),
    role: fc.constantFrom(...CUSTOM, 'viewer', 'user', 'admin'),
    body: fc.record({ priority, entries: fc.option(entries, { nil: undefined }), description: fc.option(fc.constant('edited'), { nil: undefined }) }, { requiredKeys: [] }).map(({ entries: e, ...rest }) => ({ ...rest, ...(e ?? {}) })),
  }),
  fc.record({ kind: fc.constant('deleteRole' as const), role: fc.constantFrom(...CUSTOM) }),
  fc.record({ kind: fc.constant('setRoles' as const), user, roles: fc.uniqueArray(fc.constantFrom(...ROLES), { maxLength: 3 }) }),
  fc.record({ kind: fc.constant('setOverride' as const), user, permission: fc.constantFrom(...NAMES), effect: fc.constantFrom('allow' as const, 'deny' as const), expires_at: expiry }),
  fc.record({ kind: fc.constant('removeOverride' as const), user, permission: fc.constantFrom(...NAMES) }),
);

interface Tenant {
  readonly slug: string;
  readonly tokens: Record<Actor, string>;
  readonly users: Record<UserKey | 'admin' | 'lead', { id: string; email: string }>;
  readonly roleIds: Map<string, string>;
}

let serial = 0;

/** A fresh tenant with the world's roles and users; `lead` is a second actor who out-ranks few. */
async function tenantOf(w: World): Promise<Tenant> {
  const slug = `cpr${++serial}`;
  const admin = await seedTenant(t, slug);
  const adminToken = (await login(t.app, slug, admin.email)).access_token;
  const post = async (url: string, payload: object) => {
    const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/${url}`, headers: bearer(adminToken), payload });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.body}`);
    return res.json();
  };
  for (const [i, name] of CUSTOM.entries()) await post('roles', { name, priority: w.roles[i]!.priority, ...w.roles[i]!.entries });
  await post('roles', { name: 'lead', priority: 60, permissions: ['users.*', 'roles.*', 'notes.*', 'permissions.read', 'teams.read'] });
  const users = { admin } as Tenant['users'];
  users.lead = await seedUser(t, slug, { email: `lead@${slug}.example`, roles: ['lead'] });
  for (const [i, key] of USERS.entries()) {
    users[key] = await seedUser(t, slug, { email: `${key}@${slug}.example`, roles: w.users[i]!.roles });
    for (const o of w.users[i]!.overrides) {
      const res = await t.app.inject({ method: 'PUT', url: `/api/v1/tenants/${slug}/users/${users[key].id}/permissions/${o.permission}`, headers: bearer(adminToken), payload: { effect: o.effect, expires_at: o.expires_at } });
      if (res.statusCode !== 200) throw new Error(`override: ${res.body}`);
    }
  }
  const roles = await tenantDb(t.db.database.db, `tenant_${slug}`).selectFrom('roles').select(['id', 'name']).execute();
  return { slug, tokens: { admin: adminToken, lead: (await login(t.app, slug, `lead@${slug}.example`)).access_token }, users, roleIds: new Map(roles.map((r) => [r.name, r.id])) };
}

function requestOf(tenant: Tenant, o: Op): { method: Method; url: string; payload?: object } {
  switch (o.kind) {
    case 'editRole':
      return { method: o.method, url: `roles/${tenant.roleIds.get(o.role)}`, payload: o.body };
    case 'deleteRole':
      return { method: 'DELETE', url: `roles/${tenant.roleIds.get(o.role)}` };
    case 'setRoles':
      return { method: 'PUT', url: `users/${tenant.users[o.user].id}/roles`, payload: { roles: o.roles } };
    case 'setOverride':
      return { method: 'PUT', url: `users/${tenant.users[o.user].id}/permissions/${o.permission}`, payload: { effect: o.effect, ...(o.expires_at ? { expires_at: o.expires_at } : {}) } };
    case 'removeOverride':
      return { method: 'DELETE', url: `users/${tenant.users[o.user].id}/permissions/${o.permission}` };
  }
}

/** What every change of who holds what writes, and what a refused route permission audits. */
async function writesOf(slug: string) {
  const db = tenantDb(t.db.database.db, `tenant_${slug}`);
  const count = async (table: 'audit_logs' | 'outbox_events' | 'user_roles' | 'user_permissions' | 'role_permissions') => Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const versions = await db.selectFrom('roles').select(['version']).orderBy('id').execute();
  return { audit: await count('audit_logs'), events: await count('outbox_events'), memberships: await count('user_roles'), overrides: await count('user_permissions'), grants: await count('role_permissions'), versions };
}

async function effectiveAll(tenant: Tenant): Promise<Map<string, { email: string; effective: string[] }>> {
  const out = new Map<string, { email: string; effective: string[] }>();
  for (const u of Object.values(tenant.users)) {
    const res = await t.app.inject({ url: `/api/v1/tenants/${tenant.slug}/users/${u.id}/permissions`, headers: bearer(tenant.tokens.admin) });
    out.set(u.id, { email: u.email, effective: res.json().effective });
  }
  return out;
}

const withoutRequestId = (body: Record<string, unknown>) => {
  const { request_id: _id, trace_id: _trace, ...rest } = body;
  return rest;
};

describe('the change preview against the change (property)', () => {
  it('gains and losses previewed are the differences of `effective` the change makes; refusals are the same', async () => {
    const neighbours = { cpp: await writesOf('cpp'), cpq: await writesOf('cpq') };
    let previewed = 0;
    let refused = 0;
    let moved = 0;
    await fc.assert(
      fc.asyncProperty(world, fc.array(fc.tuple(op, fc.constantFrom<Actor>('admin', 'admin', 'lead')), { minLength: 1, maxLength: 6 }), async (w, ops) => {
        const tenant = await tenantOf(w);
        for (const [o, actor] of ops) {
          const { method, url, payload } = requestOf(tenant, o);
          const send = (query: string) =>
            t.app.inject({ method, url: `/api/v1/tenants/${tenant.slug}/${url}${query}`, headers: bearer(tenant.tokens[actor]), ...(payload ? { payload } : {}) });
          const before = await effectiveAll(tenant);
          const written = await writesOf(tenant.slug);
          const dry = await send('?dry_run=true');
          expect(await writesOf(tenant.slug)).toEqual(written);
          const real = await send('');
          if (dry.statusCode !== 200) {
            refused++;
            expect(real.statusCode, `${method} ${url} ${JSON.stringify(payload)}: ${real.body}`).toBe(dry.statusCode);
            expect(withoutRequestId(real.json())).toEqual(withoutRequestId(dry.json()));
            continue;
          }
          previewed++;
          expect(real.statusCode, `${method} ${url} ${JSON.stringify(payload)}: ${real.body}`).toBeLessThan(300);
          const after = await effectiveAll(tenant);
          const expected = [...before]
            .map(([id, { email, effective }]) => {
              const now = after.get(id)!.effective;
              return { user_id: id, email, gained: now.filter((p) => !effective.includes(p)), lost: effective.filter((p) => !now.includes(p)) };
            })
            .filter((u) => u.gained.length + u.lost.length > 0)
            .sort((a, b) => a.email.localeCompare(b.email));
          if (expected.length) moved++;
          expect(dry.json(), `${method} ${url} ${JSON.stringify(payload)}`).toEqual({ dry_run: true, total_affected: expected.length, affected: expected });
        }
      }),
      { numRuns: 20 },
    );
    // Both outcomes were met often enough to mean something.
    expect(previewed).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(5);
    expect(moved).toBeGreaterThan(5);
    expect({ cpp: await writesOf('cpp'), cpq: await writesOf('cpq') }).toEqual(neighbours);
  }, 300_000);
});
