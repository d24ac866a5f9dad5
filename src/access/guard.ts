import { sql, type Kysely } from 'kysely';
import type { TenantDatabase } from '../db/types.js';
import { DomainError, text } from '../errors.js';
import {
  alwaysHeld,
  holdsEverything,
  lastSuperuser,
  losesEverything,
  roleChangeRefusal,
  userChangeRefusal,
  withRoleChanged,
  type Moved,
  type RoleShape,
} from './authority.js';
import { CONCRETE_PERMISSIONS } from './catalogue.js';
import type { AccessData, Effect } from './engine.js';

/** Who acts: a user, or an API key of that user (its scope bounds what the actor holds). */
export interface ActorRef {
  readonly userId: string;
  readonly scope: readonly string[] | null;
}

/** What a change does to one user, for the out-rank rule and the last-superuser check. */
export interface UserChange {
  /** The user's access after the change; unchanged when left out. */
  readonly after?: (before: AccessData) => AccessData;
  /** The permission names the change gives or takes (a role's entries, an override). */
  readonly touched?: readonly string[];
  /** The change ends the user's standing as an active user (suspend, deactivate, delete). */
  readonly leaves?: boolean;
}

const CHUNK = 1_000;
const NOBODY: AccessData = { roles: [], grants: [], overrides: [] };
const chunks = <T>(items: readonly T[]) => Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));

/** Users' roles, grants and overrides as they are now in `db` (a transaction sees its own writes). */
export async function loadAccessData(db: Kysely<TenantDatabase>, userIds: readonly string[]): Promise<Map<string, AccessData>> {
  const found = new Map<string, { roles: { name: string; priority: number }[]; grants: AccessData['grants'][number][]; overrides: AccessData['overrides'][number][] }>();
  for (const id of userIds) found.set(id, { roles: [], grants: [], overrides: [] });
  for (const ids of chunks([...found.keys()])) {
    const [roles, grants, overrides] = await Promise.all([
      db
        .selectFrom('user_roles as ur')
        .innerJoin('roles as r', 'r.id', 'ur.role_id')
        .select(['ur.user_id', 'r.name', 'r.priority'])
        .where('ur.user_id', 'in', ids)
        .where('r.deleted_at', 'is', null)
        .orderBy('r.priority', 'desc')
        .orderBy('r.name')
        .execute(),
      db
        .selectFrom('user_roles as ur')
        .innerJoin('roles as r', 'r.id', 'ur.role_id')
        .innerJoin('role_permissions as rp', 'rp.role_id', 'r.id')
        .innerJoin('permissions as p', 'p.id', 'rp.permission_id')
        .select(['ur.user_id', 'r.name as role', 'r.priority', 'p.name as permission', 'rp.effect'])
        .where('ur.user_id', 'in', ids)
        .where('r.deleted_at', 'is', null)
        .execute(),
      db
        .selectFrom('user_permissions as up')
        .innerJoin('permissions as p', 'p.id', 'up.permission_id')
        .select(['up.user_id', 'p.name as permission', 'up.effect', 'up.expires_at'])
        .where('up.user_id', 'in', ids)
        .execute(),
    ]);
    for (const r of roles) found.get(r.user_id)!.roles.push({ name: r.name, priority: r.priority });
    for (const g of grants) found.get(g.user_id)!.grants.push({ role: g.role, priority: g.priority, permission: g.permission, effect: g.effect as Effect });
    for (const o of overrides) found.get(o.user_id)!.overrides.push({ permission: o.permission, effect: o.effect as Effect, expiresAt: o.expires_at });
  }
  return found;
}

/** Live roles by id, as the rules see them. */
export async function loadRoleShapes(db: Kysely<TenantDatabase>, roleIds: readonly string[]): Promise<Map<string, RoleShape>> {
  const shapes = new Map<string, RoleShape & { allow: string[]; deny: string[] }>();
  if (roleIds.length === 0) return shapes;
  const rows = await db
    .selectFrom('roles as r')
    .leftJoin('role_permissions as rp', 'rp.role_id', 'r.id')
    .leftJoin('permissions as p', 'p.id', 'rp.permission_id')
    .select(['r.id', 'r.name', 'r.priority', 'p.name as permission', 'rp.effect'])
    .where('r.id', 'in', roleIds)
    .where('r.deleted_at', 'is', null)
    .execute();
  for (const row of rows) {
    let shape = shapes.get(row.id);
    if (!shape) shapes.set(row.id, (shape = { name: row.name, priority: row.priority, allow: [], deny: [] }));
    if (row.permission) (row.effect === 'deny' ? shape.deny : shape.allow).push(row.permission);
  }
  return shapes;
}

/**
 * The one place that decides "may this actor change this user" and "may this actor edit this
 * role", and keeps an active user who holds every permission. Each check runs inside the
 * change's transaction, after a tenant-wide lock, on data read there: two concurrent changes
 * cannot each take away the other's last administrator.
 */
export const accessGuard = {
  /**
   * Serializes the tenant's changes to who holds what (a row lock on the `*` permission): a
   * change that may lower someone takes it exclusively; one that cannot (a new user, a profile
   * edit) shares it, so such changes run side by side but never beside a demotion.
   */
  async lock(trx: Kysely<TenantDatabase>, mode: 'exclusive' | 'shared' = 'exclusive'): Promise<void> {
    const row = trx.selectFrom('permissions').select('id').where('name', '=', '*');
    await (mode === 'exclusive' ? row.forNoKeyUpdate() : row.forShare()).execute();
  },

  /**
   * What the actor holds for these rules, read after the lock: what it holds now and will go on
   * holding (a permission it holds only until an override expires is not its to pass on). A
   * request authenticated before a suspension or a deletion of its actor committed, and
   * waiting on the lock meanwhile, acts no more (401).
   */
  async actorSet(trx: Kysely<TenantDatabase>, actor: ActorRef, data?: AccessData): Promise<Set<string>> {
    const standing = await trx.selectFrom('users').select('status').where('id', '=', actor.userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (standing?.status !== 'active') throw new DomainError('auth.account_inactive');
    data ??= (await loadAccessData(trx, [actor.userId])).get(actor.userId)!;
    return alwaysHeld(data, actor.scope);
  },

  /**
   * Refuses (403) a change to `userId` (null: a user being created) the actor does not out-rank,
   * and (409) one that leaves no active user holding every permission.
   */
  async checkUserChange(trx: Kysely<TenantDatabase>, actor: ActorRef, userId: string | null, change: UserChange = {}): Promise<void> {
    await this.lock(trx, userId && (change.after || change.leaves) ? 'exclusive' : 'shared');
    const data = await loadAccessData(trx, userId ? [actor.userId, userId] : [actor.userId]);
    const before = userId ? data.get(userId)! : NOBODY;
    const after = change.after ? change.after(before) : before;
    const refusal = userChangeRefusal(await this.actorSet(trx, actor, data.get(actor.userId)), before, after, change.touched ?? []);
    if (refusal) throw refusal;
    if (!userId) return;
    const status = await trx.selectFrom('users').select('status').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    const active = status?.status === 'active';
    await this.keepSuperuser(trx, new Map([[userId, { before: active ? before : null, after: active && !change.leaves ? after : null }]]));
  },

  /**
   * Refuses (403) a change that binds every user, administrators included (how they sign in,
   * how long their sessions last, when they are locked out), to an actor who does not hold
   * every permission: such a change is a change to every user, so it needs to out-rank them all.
   */
  async checkTenantWideChange(trx: Kysely<TenantDatabase>, actor: ActorRef, key: string): Promise<void> {
    await this.lock(trx, 'shared');
    const held = await this.actorSet(trx, actor);
    const lacking = CONCRETE_PERMISSIONS.find((p) => !held.has(p));
    if (lacking) throw new DomainError('permission.outranked', text('detail.tenant_wide_setting', { key, permission: lacking }));
  },

  /** Refuses a role change (create: `before` null; delete: `after` null) the actor may not make. */
  async checkRoleChange(trx: Kysely<TenantDatabase>, actor: ActorRef, roleId: string | null, before: RoleShape | null, after: RoleShape | null): Promise<void> {
    await this.lock(trx);
    const actorData = (await loadAccessData(trx, [actor.userId])).get(actor.userId)!;
    const holders = roleId && before ? await trx.selectFrom('user_roles as ur').innerJoin('users as u', 'u.id', 'ur.user_id').select(['u.id', 'u.status', 'u.deleted_at']).where('ur.role_id', '=', roleId).execute() : [];
    const data = await loadAccessData(trx, holders.map((h) => h.id));
    const moved = new Map<string, Moved>();
    const pairs = holders.map((h) => {
      const was = data.get(h.id)!;
      const will = withRoleChanged(was, before!, after);
      const active = h.status === 'active' && h.deleted_at === null;
      moved.set(h.id, { before: active ? was : null, after: active ? will : null });
      return { before: was, after: will };
    });
    const refusal = roleChangeRefusal(await this.actorSet(trx, actor, actorData), actorData.roles.map((r) => r.name), before, after, pairs);
    if (refusal) throw refusal;
    await this.keepSuperuser(trx, moved);
  },

  /**
   * 409 when the change takes "everything" from an active user and no other active user holds
   * it afterwards.
   */
  async keepSuperuser(trx: Kysely<TenantDatabase>, moved: ReadonlyMap<string, Moved>): Promise<void> {
    if (!losesEverything([...moved.values()])) return;
    const now = new Date();
    for (const m of moved.values()) if (m.after && holdsEverything(m.after, now)) return;
    const movedIds = [...moved.keys()];
    const active = () => {
      let q = trx.selectFrom('users as u').where('u.status', '=', 'active').where('u.deleted_at', 'is', null);
      if (movedIds.length) q = q.where('u.id', 'not in', movedIds);
      return q;
    };
    const holdsAny = async (ids: string[]) => [...(await loadAccessData(trx, ids)).values()].some((d) => holdsEverything(d, now));
    // Likely holders first: users of a role that allows `*` (the full scan below finds any other).
    const likely = await active()
      .select('u.id')
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('user_roles as ur')
            .innerJoin('role_permissions as rp', 'rp.role_id', 'ur.role_id')
            .innerJoin('permissions as p', 'p.id', 'rp.permission_id')
            .whereRef('ur.user_id', '=', 'u.id')
            .where('p.name', '=', '*')
            .where('rp.effect', '=', 'allow')
            .select(sql.lit(1).as('one')),
        ),
      )
      .limit(100)
      .execute();
    if (await holdsAny(likely.map((r) => r.id))) return;
    let after: string | undefined;
    for (;;) {
      let page = active().select('u.id').orderBy('u.id').limit(CHUNK);
      if (after) page = page.where('u.id', '>', after);
      const ids = (await page.execute()).map((r) => r.id);
      if (ids.length === 0) throw lastSuperuser();
      if (await holdsAny(ids)) return;
      after = ids[ids.length - 1];
    }
  },
};

/** The actor of an audited change, for the rules: a user acts (alone, or through an API key's scope). */
export function actorOf(actor: { readonly actorUserId: string | null; readonly scope?: readonly string[] | null }): ActorRef {
  if (!actor.actorUserId) throw new DomainError('permission.actor_required');
  return { userId: actor.actorUserId, scope: actor.scope ?? null };
}
