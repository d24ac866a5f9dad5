import type { Kysely } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Change, Changes } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantContext } from '../tenancy/directory.js';
import { CONCRETE_PERMISSIONS } from './catalogue.js';
import { decide, withinScope, type AccessData, type Decision, type Reason } from './engine.js';
import { loadAccessData } from './guard.js';

export { CONCRETE_PERMISSIONS };

export interface Explanation {
  readonly permission: string;
  readonly allowed: boolean;
  readonly reason: Reason;
}

/** A user's cached access data; with no user id, the prefix of every user's in the tenant. */
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
  /**
   * Decisions made from a user's cached data, kept with it (a reload after an invalidation is a
   * new object) until the next of its overrides expires: per permission, and the allowed list.
   */
  private readonly decidedOf = new WeakMap<AccessData, { until: number; decisions: Map<string, Decision>; allowed?: readonly string[] }>();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
    changes: Changes,
  ) {
    changes.listen(this);
  }

  async data(tenant: TenantContext, userId: string): Promise<AccessData> {
    return this.local.load(accessKey(tenant, userId), () => this.load(tenant, userId));
  }

  private async load(tenant: TenantContext, userId: string): Promise<AccessData> {
    return (await loadAccessData(tenantDb(this.db, tenant.schema), [userId])).get(userId)!;
  }

  async can(tenant: TenantContext, userId: string, permission: string): Promise<Decision> {
    return this.decision(await this.data(tenant, userId), permission);
  }

  /**
   * Whether a caller holds `permission` now: its user's current access allows it and, for an API
   * key, its scope covers it. The rule every tenant route, realtime socket and search type checks.
   */
  async holds(tenant: TenantContext, caller: { readonly userId: string; readonly scope: readonly string[] | null }, permission: string): Promise<boolean> {
    if (caller.scope && !withinScope(caller.scope, permission)) return false;
    return (await this.can(tenant, caller.userId, permission)).allowed;
  }

  /** Audits a refusal (`auth.permission_denied`): the permission (or several, comma-separated) and where it was asked for. */
  async refused(tenant: TenantContext, actor: AuditActor, permission: string, where: { readonly method: string; readonly route: string }): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute((trx) => writeAudit(trx, actor, { action: 'auth.permission_denied', metadata: { permission, method: where.method, route: where.route } }));
  }

  /** can without a promise: the decision when the user's data is cached, undefined otherwise. */
  canCached(tenant: TenantContext, userId: string, permission: string): Decision | undefined {
    const data = this.local.get<AccessData>(accessKey(tenant, userId));
    return data && this.decision(data, permission);
  }

  private decided(data: AccessData) {
    const now = Date.now();
    let known = this.decidedOf.get(data);
    if (!known || now >= known.until) this.decidedOf.set(data, (known = { until: nextExpiry(data, now), decisions: new Map() }));
    return known;
  }

  /** decide(), remembered: a request's permission check without building names, scanning grants or allocating a decision. */
  private decision(data: AccessData, permission: string): Decision {
    const { decisions } = this.decided(data);
    let decision = decisions.get(permission);
    if (!decision) {
      decision = decide(data, permission);
      // Route permissions and the catalogue's names are few; anything beyond is not kept.
      if (decisions.size < DECISIONS_MAX) decisions.set(permission, decision);
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
   * The concrete permissions `data` allows now: what access tokens carry. Deciding every one of
   * them was ~7% of a refresh's CPU, so the list is remembered like the decisions it is made of.
   */
  allowed(data: AccessData): readonly string[] {
    const known = this.decided(data);
    return (known.allowed ??= Object.freeze(CONCRETE_PERMISSIONS.filter((permission) => this.decision(data, permission).allowed)));
  }

  /** Drops cached access data a committed change made stale: one user's, or (roles) every user's of the tenant. */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    if (change.kind === 'access') return this.local.invalidate(accessKey(tenant, change.userId));
    if (change.kind === 'roles' || change.kind === 'tenant') return this.local.invalidate(accessKey(tenant, ''));
    return undefined;
  }
}
