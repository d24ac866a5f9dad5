/**
 * The permission decision of SPEC section 5, as a pure function of a user's data:
 *  1. a live user-level override for the permission decides (the most specific one:
 *     `res.act` over `res.*` over `*`);
 *  2. else, among the user's roles with a grant or deny that matches (wildcards count),
 *     the highest priority decides, and at equal priority deny wins;
 *  3. else deny.
 */
export type Effect = 'allow' | 'deny';

export interface Override {
  readonly permission: string;
  readonly effect: Effect;
  readonly expiresAt: Date | null;
}

export interface RoleGrant {
  readonly role: string;
  readonly priority: number;
  readonly permission: string;
  readonly effect: Effect;
}

export interface AccessData {
  readonly roles: readonly { name: string; priority: number }[];
  readonly overrides: readonly Override[];
  readonly grants: readonly RoleGrant[];
}

export type Reason =
  | { readonly source: 'override'; readonly permission: string; readonly effect: Effect; readonly expires_at: Date | null }
  | { readonly source: 'role'; readonly role: string; readonly priority: number; readonly permission: string; readonly effect: Effect }
  | { readonly source: 'default' };

export interface Decision {
  readonly allowed: boolean;
  readonly reason: Reason;
}

/** Names that match `permission`, most specific first: `notes.read`, `notes.*`, `*`. */
export function matchingNames(permission: string): string[] {
  if (permission === '*') return ['*'];
  const dot = permission.indexOf('.');
  const resource = dot < 0 ? permission : permission.slice(0, dot);
  return permission.endsWith('.*') ? [permission, '*'] : [permission, `${resource}.*`, '*'];
}

export function decide(data: AccessData, permission: string, now: Date = new Date()): Decision {
  const names = matchingNames(permission);
  for (const name of names) {
    const override = data.overrides.find((o) => o.permission === name && (o.expiresAt === null || o.expiresAt > now));
    if (override) {
      return {
        allowed: override.effect === 'allow',
        reason: { source: 'override', permission: override.permission, effect: override.effect, expires_at: override.expiresAt },
      };
    }
  }
  let best: RoleGrant | undefined;
  for (const grant of data.grants) {
    if (!names.includes(grant.permission)) continue;
    if (!best || grant.priority > best.priority || (grant.priority === best.priority && grant.effect === 'deny' && best.effect === 'allow')) {
      best = grant;
    }
  }
  if (best) {
    return { allowed: best.effect === 'allow', reason: { source: 'role', role: best.role, priority: best.priority, permission: best.permission, effect: best.effect } };
  }
  return { allowed: false, reason: { source: 'default' } };
}

/** Whether a permission name is within a set of granted names (wildcards count): API key scopes. */
export function withinScope(scope: readonly string[], permission: string): boolean {
  return matchingNames(permission).some((name) => scope.includes(name));
}
