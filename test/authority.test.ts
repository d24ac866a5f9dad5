import { RESOURCES } from '../src/access/catalogue.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  effective,
  everHeld,
  instants,
  holdsEverything,
  losesEverything,
  roleChangeRefusal,
  touchedByRoleChange,
  touchedByRoles,
  userChangeRefusal,
  withOverride,
  withRoleChanged,
  withRoles,
  type RoleShape,
} from '../src/access/authority.js';
import type { AccessData, Effect } from '../src/access/engine.js';

/**
 * A tenant in miniature: roles and users, and one actor making changes through the same pure
 * rules the services call (access/authority.ts). Whatever sequence of changes is tried, the
 * allowed ones never raise anybody above the actor and never lower someone who out-ranks it.
 */
const NAMES = ['*', 'users.*', 'users.read', 'users.update', 'users.delete', 'roles.*', 'roles.update', 'notes.*', 'notes.read', 'notes.create', 'audit_logs.read'];
const USERS = ['actor', 'u1', 'u2', 'u3'] as const;
type UserId = (typeof USERS)[number];

interface World {
  roles: Map<string, RoleShape>;
  users: Map<UserId, { roles: string[]; overrides: AccessData['overrides'] }>;
}

const dataOf = (world: World, id: UserId): AccessData => {
  const user = world.users.get(id)!;
  return { ...withRoles({ roles: [], grants: [], overrides: [] }, user.roles.map((r) => world.roles.get(r)!)), overrides: user.overrides };
};

/** Overrides for good, or until one of a few future hours. */
const expiry = fc.option(
  fc.integer({ min: 1, max: 3 }).map((h) => new Date(Date.now() + h * 3_600_000)),
  { nil: null },
);
const names = fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 3 });
const role = (name: string) =>
  fc.record({ allow: names, deny: names, priority: fc.integer({ min: 0, max: 200 }) }).map(({ allow, deny, priority }) => ({ name, priority, allow, deny: deny.filter((d) => !allow.includes(d)) }));
const roleNames = ['admin', 'r1', 'r2', 'r3', 'r4'];

const world: fc.Arbitrary<World> = fc
  .record({
    roles: fc.tuple(...roleNames.slice(1).map(role)),
    memberships: fc.array(fc.uniqueArray(fc.constantFrom(...roleNames), { maxLength: 3 }), { minLength: USERS.length, maxLength: USERS.length }),
    overrides: fc.array(fc.uniqueArray(fc.record({ permission: fc.constantFrom(...NAMES), effect: fc.constantFrom<Effect>('allow', 'deny'), expiresAt: expiry }), { selector: (o) => o.permission, maxLength: 2 }), {
      minLength: USERS.length,
      maxLength: USERS.length,
    }),
  })
  .map(({ roles, memberships, overrides }) => ({
    roles: new Map<string, RoleShape>([['admin', { name: 'admin', priority: 100, allow: ['*'], deny: [] }], ...roles.map((r) => [r.name, r] as const)]),
    users: new Map(USERS.map((id, i) => [id, { roles: memberships[i]!, overrides: overrides[i]! }])),
  }));

type Op =
  | { kind: 'setRoles'; target: UserId; roles: string[] }
  | { kind: 'setOverride'; target: UserId; permission: string; effect: Effect; expiresAt: Date | null }
  | { kind: 'removeOverride'; target: UserId; permission: string }
  | { kind: 'editRole'; role: string; next: { allow: string[]; deny: string[]; priority: number } }
  | { kind: 'deleteRole'; role: string };

const target = fc.constantFrom<UserId>('u1', 'u2', 'u3');
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('setRoles' as const), target, roles: fc.uniqueArray(fc.constantFrom(...roleNames), { maxLength: 3 }) }),
  fc.record({ kind: fc.constant('setOverride' as const), target, permission: fc.constantFrom(...NAMES), effect: fc.constantFrom<Effect>('allow', 'deny'), expiresAt: expiry }),
  fc.record({ kind: fc.constant('removeOverride' as const), target, permission: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant('editRole' as const), role: fc.constantFrom(...roleNames.slice(1)), next: role('x').map(({ allow, deny, priority }) => ({ allow, deny, priority })) }),
  fc.record({ kind: fc.constant('deleteRole' as const), role: fc.constantFrom(...roleNames.slice(1)) }),
);

/** Applies `op` if the rules allow it; returns whether they did. */
function attempt(w: World, op: Op): boolean {
  const actorData = dataOf(w, 'actor');
  const actor = effective(actorData);
  if (op.kind === 'editRole' || op.kind === 'deleteRole') {
    const before = w.roles.get(op.role);
    if (!before) return false;
    const after = op.kind === 'editRole' ? { name: before.name, ...op.next } : null;
    const holders = USERS.filter((u) => w.users.get(u)!.roles.includes(op.role)).map((u) => ({ before: dataOf(w, u), after: withRoleChanged(dataOf(w, u), before, after) }));
    if (roleChangeRefusal(actor, actorData.roles.map((r) => r.name), before, after, holders)) return false;
    if (after) w.roles.set(op.role, after);
    else {
      w.roles.delete(op.role);
      for (const user of w.users.values()) user.roles = user.roles.filter((r) => r !== op.role);
    }
    return true;
  }
  const user = w.users.get(op.target)!;
  const before = dataOf(w, op.target);
  if (op.kind === 'setRoles') {
    const next = op.roles.filter((r) => w.roles.has(r));
    const shapes = next.map((r) => w.roles.get(r)!);
    const touched = touchedByRoles(user.roles.map((r) => w.roles.get(r)!), shapes);
    if (userChangeRefusal(actor, before, withRoles(before, shapes), touched)) return false;
    user.roles = next;
    return true;
  }
  const after = op.kind === 'setOverride' ? withOverride(before, op.permission, op.effect, op.expiresAt) : withOverride(before, op.permission, null);
  if (userChangeRefusal(actor, before, after, [op.permission])) return false;
  user.overrides = after.overrides;
  return true;
}

describe('the out-rank rule (pure model)', () => {
  it('no allowed change raises anyone above the actor or lowers anyone who out-ranks it', () => {
    fc.assert(
      fc.property(world, fc.array(op, { minLength: 1, maxLength: 12 }), (w, ops) => {
        const actorStart = effective(dataOf(w, 'actor'));
        for (const o of ops) {
          const actor = effective(dataOf(w, 'actor'));
          const before = new Map(USERS.map((u) => [u, dataOf(w, u)]));
          if (!attempt(w, o)) continue;
          for (const u of USERS) {
            const was = before.get(u)!;
            const is = dataOf(w, u);
            // Nobody gains, now or once an override expires, what the actor lacks.
            const held = everHeld(was);
            expect([...everHeld(is)].filter((p) => !held.has(p) && !actor.has(p))).toEqual([]);
            // Somebody holding (now or later) what the actor lacks decides as before at every instant.
            if ([...held].some((p) => !actor.has(p))) {
              for (const at of instants(new Date(), was, is)) expect({ u, at, set: [...effective(is, null, at)] }).toEqual({ u, at, set: [...effective(was, null, at)] });
            }
          }
        }
        // Over the whole sequence, the actor never ends up holding more than it started with.
        expect([...effective(dataOf(w, 'actor'))].filter((p) => !actorStart.has(p))).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses the reproductions of the review as pure decisions', () => {
    const manager = effective({ roles: [{ name: 'manager', priority: 75 }], overrides: [], grants: ['users.read', 'users.update', 'users.create'].map((p) => ({ role: 'manager', priority: 75, permission: p, effect: 'allow' as const })) });
    const admin: AccessData = { roles: [{ name: 'admin', priority: 100 }], overrides: [], grants: [{ role: 'admin', priority: 100, permission: '*', effect: 'allow' }] };
    // A profile or email change to an admin, or a deny override on one: the admin out-ranks.
    expect(userChangeRefusal(manager, admin, admin, [])?.code).toBe('permission.outranked');
    expect(userChangeRefusal(manager, admin, withOverride(admin, 'users.update', 'deny'), ['users.update'])?.code).toBe('permission.outranked');
    // A deny-only role counts: attaching it touches what it denies.
    const denyOnly: RoleShape = { name: 'muzzle', priority: 500, allow: [], deny: ['audit_logs.read'] };
    const user: AccessData = { roles: [], overrides: [], grants: [] };
    expect(userChangeRefusal(manager, user, withRoles(user, [denyOnly]), touchedByRoles([], [denyOnly]))?.message).toMatch(/audit_logs\.read/);
    // Emptying a role's deny entries touches them, whoever holds the role.
    const ops: RoleShape = { name: 'ops', priority: 60, allow: ['*'], deny: ['audit_logs.*', 'users.delete'] };
    expect(touchedByRoleChange(ops, { ...ops, deny: [] })).toEqual(['audit_logs.*', 'users.delete']);
    // A role edit whose effect on a holder is hidden today by an override that expires tonight
    // still moves that holder: refused when the holder out-ranks the actor.
    const helper: RoleShape = { name: 'helper', priority: 200, allow: ['notes.read'], deny: [] };
    const soon = new Date(Date.now() + 60_000);
    const holder = withOverride(withRoles(admin, [{ name: 'admin', priority: 100, allow: ['*'], deny: [] }, helper]), 'notes.read', 'allow', soon);
    const edited: RoleShape = { ...helper, allow: [], deny: ['notes.read'] };
    const deputy = new Set([...effective(admin)].filter((p) => p !== 'audit_logs.delete'));
    expect(roleChangeRefusal(deputy, [], helper, edited, [{ before: holder, after: withRoleChanged(holder, helper, edited) }])?.message).toMatch(/holding this role holds audit_logs\.delete/);
  });

  it('knows who holds everything, and when a change takes it away', () => {
    const admin: AccessData = { roles: [{ name: 'admin', priority: 100 }], overrides: [], grants: [{ role: 'admin', priority: 100, permission: '*', effect: 'allow' }] };
    const byResources: AccessData = {
      roles: [{ name: 'all', priority: 1 }],
      overrides: [],
      grants: RESOURCES.map((r) => ({
        role: 'all',
        priority: 1,
        permission: `${r}.*`,
        effect: 'allow' as const,
      })),
    };
    expect(holdsEverything(admin)).toBe(true);
    expect(holdsEverything(byResources)).toBe(true);
    expect(holdsEverything(withOverride(admin, 'notes.read', 'deny'))).toBe(false);
    expect(losesEverything([{ before: admin, after: withOverride(admin, 'notes.read', 'deny') }])).toBe(true);
    expect(losesEverything([{ before: admin, after: null }])).toBe(true);
    expect(losesEverything([{ before: null, after: null }])).toBe(false);
    expect(losesEverything([{ before: admin, after: admin }])).toBe(false);
    // A `*` that expires tonight is not everything; a deny that expires tonight still hides something.
    const soon = new Date(Date.now() + 60_000);
    const temporary: AccessData = { roles: [], grants: [], overrides: [{ permission: '*', effect: 'allow', expiresAt: soon }] };
    expect(effective(temporary).size).toBeGreaterThan(60);
    expect(holdsEverything(temporary)).toBe(false);
    const hidden = withOverride(admin, 'audit_logs.delete', 'deny', soon);
    expect(effective(hidden).has('audit_logs.delete')).toBe(false);
    expect(everHeld(hidden).has('audit_logs.delete')).toBe(true);
  });
});
