import { decide, type AccessData } from './engine.js';
import { CONCRETE_PERMISSIONS } from './catalogue.js';

/** The concrete permissions a granted name covers: `*` all, `notes.*` the four notes actions. */
export function expand(name: string): string[] {
  if (name === '*') return [...CONCRETE_PERMISSIONS];
  if (name.endsWith('.*')) return CONCRETE_PERMISSIONS.filter((p) => p.startsWith(name.slice(0, -1)));
  return [name];
}

/**
 * The granting rule of SPEC section 5: an actor may hand out a role or a permission only when
 * every concrete permission it carries is within the actor's own effective permissions.
 * Returns the first permission the actor lacks, if any.
 */
export function missingForGrant(actor: AccessData, granted: readonly string[]): string | undefined {
  const now = new Date();
  for (const name of granted) {
    for (const permission of expand(name)) if (!decide(actor, permission, now).allowed) return permission;
  }
  return undefined;
}
