import type { Kysely } from 'kysely';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantContext } from '../tenancy/directory.js';
import { ACTIONS, RESOURCES } from './catalogue.js';
import { decide, type AccessData, type Decision, type Effect, type Reason } from './engine.js';

/** Every concrete permission (`<resource>.<action>`), the set "effective permissions" range over. */
export const CONCRETE_PERMISSIONS: readonly string[] = RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}.${a}`));

export interface Explanation {
  readonly permission: string;
  readonly allowed: boolean;
  readonly reason: Reason;
}

const accessKey = (tenant: TenantContext, userId: string) => `access:${tenant.schema}:${userId}`;
const DECISIONS_MAX = 1_000;

/** When the first of the data's overrides still live at `now` expires (Infinity: none will). */
const nextExpiry = (data: AccessData, now: number) => Math.min(...data.overrides.map((o) => o.expiresAt?.getTime() ?? Infinity).filter((t) => t > now));

/**
 * Evaluates permissions from current data: a user's roles, grants and overrides are loaded
 * once and cached per user; any change to roles, grants, user roles or overrides
 * invalidates them (here and, through the shared cache, on every instance).
 */
export class AccessService {
  private readonly effectiveOf = new WeakMap<AccessData, { permissions: readonly string[]; until: number }>();
  private readonly decisionsOf = new WeakMap<AccessData, { decisions: Map<string, Decision>; until: number }>();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
  ) {}

  async data(tenant: TenantContext, userId: string): Promise<AccessData> {
    return this.local.load(accessKey(tenant, userId), () => this.load(tenant, userId));
  }

  private async load(tenant: TenantContext, userId: string): Promise<AccessData> {
    const db = tenantDb(this.db, tenant.schema);
    const [roles, grants, overrides] = await Promise.all([
      db
        .selectFrom('user_roles as ur')
        .innerJoin('roles as r', 'r.id', 'ur.role_id')
        .select(['r.name', 'r.priority'])
        .where('ur.user_id', '=', userId)
        .where('r.deleted_at', 'is', null)
        .orderBy('r.priority', 'desc')
        .orderBy('r.name')
        .execute(),
      db
        .selectFrom('user_roles as ur')
        .innerJoin('roles as r', 'r.id', 'ur.role_id')
        .innerJoin('role_permissions as rp', 'rp.role_id', 'r.id')
        .innerJoin('permissions as p', 'p.id', 'rp.permission_id')
        .select(['r.name as role', 'r.priority', 'p.name as permission', 'rp.effect'])
        .where('ur.user_id', '=', userId)
        .where('r.deleted_at', 'is', null)
        .execute(),
      db
        .selectFrom('user_permissions as up')
        .innerJoin('permissions as p', 'p.id', 'up.permission_id')
        .select(['p.name as permission', 'up.effect', 'up.expires_at'])
        .where('up.user_id', '=', userId)
        .execute(),
    ]);
    return {
      roles,
      grants: grants.map((g) => ({ ...g, effect: g.effect as Effect })),
      overrides: overrides.map((o) => ({ permission: o.permission, effect: o.effect as Effect, expiresAt: o.expires_at })),
    };
  }

  async can(tenant: TenantContext, userId: string, permission: string): Promise<Decision> {
    return this.decision(await this.data(tenant, userId), permission);
  }

  /** can without a promise: the decision when the user's data is cached, undefined otherwise. */
  canCached(tenant: TenantContext, userId: string, permission: string): Decision | undefined {
    const data = this.local.get<AccessData>(accessKey(tenant, userId));
    return data && this.decision(data, permission);
  }

  /**
   * decide(), remembered with the cached data it was made from (a reload after an invalidation
   * is a new object) until the next of its overrides expires: a request's permission check
   * without building names, scanning grants or allocating a decision.
   */
  private decision(data: AccessData, permission: string): Decision {
    const now = Date.now();
    let known = this.decisionsOf.get(data);
    if (!known || now >= known.until) this.decisionsOf.set(data, (known = { decisions: new Map(), until: nextExpiry(data, now) }));
    let decision = known.decisions.get(permission);
    if (!decision) {
      decision = decide(data, permission, new Date(now));
      // Route permissions and the catalogue's names are few; anything beyond is not kept.
      if (known.decisions.size < DECISIONS_MAX) known.decisions.set(permission, decision);
    }
    return decision;
  }

  /** Every concrete permission with its decision and the reason for it. */
  async explain(tenant: TenantContext, userId: string): Promise<Explanation[]> {
    const data = await this.data(tenant, userId);
    const now = new Date();
    return CONCRETE_PERMISSIONS.map((permission) => ({ permission, ...decide(data, permission, now) }));
  }

  /**
   * The concrete permissions `data` allows now: what access tokens carry. Deciding every one of them was
   * ~7% of a refresh's CPU, so the list is kept with the cached data it was decided from (a
   * reload after an invalidation is a new object) until the next of its overrides expires.
   */
  allowed(data: AccessData): readonly string[] {
    const now = Date.now();
    const known = this.effectiveOf.get(data);
    if (known && now < known.until) return known.permissions;
    const at = new Date(now);
    const permissions = Object.freeze(CONCRETE_PERMISSIONS.filter((permission) => decide(data, permission, at).allowed));
    this.effectiveOf.set(data, { permissions, until: nextExpiry(data, now) });
    return permissions;
  }

  /** After a change to one user's roles or overrides. */
  invalidateUser(tenant: TenantContext, userId: string): Promise<void> {
    return this.local.invalidate(accessKey(tenant, userId));
  }

  /** After a change to a role or its grants: every user of the tenant may be affected. */
  invalidateTenant(tenant: TenantContext): Promise<void> {
    return this.local.invalidate(`access:${tenant.schema}:`);
  }
}
