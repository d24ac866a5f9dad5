/**
 * The rules of SPEC section 10 as pure functions of access data: who may change a user, who may
 * edit a role, and who always remains able to do everything. The database side (loading the
 * data inside the change's transaction) is in guard.ts; every path calls it.
 */
import { DomainError, text, type Text } from '../errors.js';
import { CONCRETE_PERMISSIONS } from './catalogue.js';
import { decide, withinScope, type AccessData, type Effect, type RoleGrant } from './engine.js';
import { expand } from './grants.js';

/** A role as the rules see it: its priority and its allow and deny entries (names, wildcards included). */
export interface RoleShape {
  readonly name: string;
  readonly priority: number;
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

/** Why a change is refused (403), with the text the caller reads. */
export type Refusal = DomainError;

/** The concrete permissions `data` allows at `now`; an API key's actor only within the key's scope. */
export function effective(data: AccessData, scope: readonly string[] | null = null, now: Date = new Date()): Set<string> {
  const allowed = new Set<string>();
  for (const permission of CONCRETE_PERMISSIONS) {
    if (decide(data, permission, now).allowed && (scope === null || withinScope(scope, permission))) allowed.add(permission);
  }
  return allowed;
}

/** Now, and each instant from which one of the data's live overrides no longer counts. */
export function instants(now: Date, ...data: AccessData[]): Date[] {
  const times = new Set([now.getTime()]);
  for (const d of data) for (const o of d.overrides) if (o.expiresAt && o.expiresAt > now) times.add(o.expiresAt.getTime());
  return [...times].sort((a, b) => a - b).map((t) => new Date(t));
}

/**
 * What `data` allows now or will allow once some of its overrides expire: a user with a deny
 * override until tonight holds, for these rules, what that override hides today.
 */
export function everHeld(data: AccessData, now: Date = new Date()): Set<string> {
  const held = new Set<string>();
  for (const at of instants(now, data)) for (const p of effective(data, null, at)) held.add(p);
  return held;
}

/**
 * What `data` allows now and at every moment after (an allow override counts only while it
 * cannot expire): what an actor may pass on, so a permission lent until tonight is not handed
 * out for good.
 */
export function alwaysHeld(data: AccessData, scope: readonly string[] | null = null, now: Date = new Date()): Set<string> {
  const [first, ...rest] = instants(now, data);
  const held = effective(data, scope, first);
  for (const at of rest) {
    const then = effective(data, scope, at);
    for (const p of held) if (!then.has(p)) held.delete(p);
  }
  return held;
}

/** The first permission of `other` that `holder` lacks; undefined when `holder` holds all of them. */
export function firstLacking(holder: ReadonlySet<string>, other: Iterable<string>): string | undefined {
  for (const permission of other) if (!holder.has(permission)) return permission;
  return undefined;
}

/** Whether `data` allows every concrete permission, now and after its overrides expire: it "effectively holds `*`". */
export function holdsEverything(data: AccessData, now: Date = new Date()): boolean {
  return instants(now, data).every((at) => CONCRETE_PERMISSIONS.every((permission) => decide(data, permission, at).allowed));
}

/** Whether two data decide alike at every instant from `now` on. */
function decideAlike(a: AccessData, b: AccessData, now: Date): boolean {
  return instants(now, a, b).every((at) => same(effective(a, null, at), effective(b, null, at)));
}

const concrete = (names: Iterable<string>) => [...names].flatMap(expand);
const same = (a: ReadonlySet<string>, b: ReadonlySet<string>) => a.size === b.size && [...a].every((p) => b.has(p));
const forbidden = (code: 'permission.outranked' | 'permission.not_held' | 'permission.self_change', detail: Text): Refusal => new DomainError(code, detail);

/**
 * May an actor holding `actor` change a user from `before` to `after`, where the change names
 * the permissions `touched` (a role's entries of both effects, an override's permission)?
 * The out-rank rule: the actor holds (now) everything the user holds before and after the
 * change (now or once an override expires), and everything the change touches.
 */
export function userChangeRefusal(actor: ReadonlySet<string>, before: AccessData, after: AccessData, touched: readonly string[], now: Date = new Date()): Refusal | undefined {
  const outranked = firstLacking(actor, everHeld(before, now));
  if (outranked) return forbidden('permission.outranked', text('detail.user_outranks', { permission: outranked }));
  const lacking = firstLacking(actor, concrete(touched));
  if (lacking) return forbidden('permission.not_held', text('detail.change_not_held', { permission: lacking }));
  const raised = firstLacking(actor, everHeld(after, now));
  if (raised) return forbidden('permission.not_held', text('detail.raise_not_held', { permission: raised }));
  return undefined;
}

/** The entries, of both effects, of the roles given or taken when a user's roles go from `current` to `next`. */
export function touchedByRoles(current: readonly RoleShape[], next: readonly RoleShape[]): string[] {
  const named = (list: readonly RoleShape[], role: RoleShape) => list.some((r) => r.name === role.name);
  const moved = [...next.filter((r) => !named(current, r)), ...current.filter((r) => !named(next, r))];
  return moved.flatMap((r) => [...r.allow, ...r.deny]);
}

/** A user's data with their roles replaced by `roles`. */
export function withRoles(data: AccessData, roles: readonly RoleShape[]): AccessData {
  return {
    roles: roles.map((r) => ({ name: r.name, priority: r.priority })),
    grants: roles.flatMap(grantsOfRole),
    overrides: data.overrides,
  };
}

/** A holder's data after the role named `before.name` becomes `after` (null: the role is deleted). */
export function withRoleChanged(data: AccessData, before: RoleShape, after: RoleShape | null): AccessData {
  return {
    roles: [...data.roles.filter((r) => r.name !== before.name), ...(after ? [{ name: after.name, priority: after.priority }] : [])],
    grants: [...data.grants.filter((g) => g.role !== before.name), ...(after ? grantsOfRole(after) : [])],
    overrides: data.overrides,
  };
}

/** A user's data with the override of `permission` set (`effect`) or removed (null). */
export function withOverride(data: AccessData, permission: string, effect: Effect | null, expiresAt: Date | null = null): AccessData {
  const others = data.overrides.filter((o) => o.permission !== permission);
  return { ...data, overrides: effect === null ? others : [...others, { permission, effect, expiresAt }] };
}

function grantsOfRole(role: RoleShape): RoleGrant[] {
  const entry = (effect: Effect) => (permission: string) => ({ role: role.name, priority: role.priority, permission, effect });
  return [...role.allow.map(entry('allow')), ...role.deny.map(entry('deny'))];
}

/** The entries of both effects that a role change touches: all of them when the priority moves. */
export function touchedByRoleChange(before: RoleShape | null, after: RoleShape | null): string[] {
  const entries = (r: RoleShape | null) => (r ? [...r.allow.map((p) => `allow ${p}`), ...r.deny.map((p) => `deny ${p}`)] : []);
  const b = new Set(entries(before));
  const a = new Set(entries(after));
  const moved = !before || !after || before.priority !== after.priority;
  const changed = moved ? [...b, ...a] : [...[...b].filter((e) => !a.has(e)), ...[...a].filter((e) => !b.has(e))];
  return [...new Set(changed.map((e) => e.slice(e.indexOf(' ') + 1)))];
}

export interface Holder {
  readonly before: AccessData;
  readonly after: AccessData;
}

/**
 * May an actor edit a role (create: `before` null; delete: `after` null)? The actor holds every
 * permission the role grants before and after, and every entry the change touches; nobody edits
 * a role they hold; and no holder whose permissions the change moves out-ranks the actor,
 * before or after.
 */
export function roleChangeRefusal(
  actor: ReadonlySet<string>,
  actorRoles: readonly string[],
  before: RoleShape | null,
  after: RoleShape | null,
  holders: readonly Holder[],
  now: Date = new Date(),
): Refusal | undefined {
  if (before && actorRoles.includes(before.name)) return forbidden('permission.self_change', text('detail.self_role_edit'));
  const granted = firstLacking(actor, concrete([...(before?.allow ?? []), ...(after?.allow ?? [])]));
  if (granted) return forbidden('permission.not_held', text('detail.role_grants_not_held', { permission: granted }));
  const touched = firstLacking(actor, concrete(touchedByRoleChange(before, after)));
  if (touched) return forbidden('permission.not_held', text('detail.role_touches_not_held', { permission: touched }));
  for (const holder of holders) {
    if (decideAlike(holder.before, holder.after, now)) continue;
    const lacking = firstLacking(actor, everHeld(holder.before, now)) ?? firstLacking(actor, everHeld(holder.after, now));
    if (lacking) return forbidden('permission.outranked', text('detail.role_holder_outranks', { permission: lacking }));
  }
  return undefined;
}

/**
 * A user a change moves: `before` null when they were not an active user, `after` null when
 * they are not one after the change (suspended, deleted).
 */
export interface Moved {
  readonly before: AccessData | null;
  readonly after: AccessData | null;
}

/** Whether a change takes "everything" from an active user who had it: then another holder must remain. */
export function losesEverything(moved: readonly Moved[], now: Date = new Date()): boolean {
  return moved.some((m) => m.before !== null && holdsEverything(m.before, now) && (m.after === null || !holdsEverything(m.after, now)));
}

export const lastSuperuser = () => DomainError.conflict('user.last_superuser');
