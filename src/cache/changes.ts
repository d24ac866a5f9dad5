import type { TenantContext } from '../tenancy/directory.js';

/** What a committed write changed in a tenant, in the terms of the caches that keep copies of it. */
export type Change =
  /** A user's standing (status, deletion). */
  | { readonly kind: 'user'; readonly userId: string }
  /** A user's roles or permission overrides. */
  | { readonly kind: 'access'; readonly userId: string }
  /** Roles or their entries: every user's access may move. */
  | { readonly kind: 'roles' }
  | { readonly kind: 'sessions'; readonly sessionIds: readonly string[] }
  | { readonly kind: 'api_keys'; readonly prefixes: readonly string[] }
  | { readonly kind: 'settings' }
  /** The whole tenant: restored from a backup, suspended, resumed or deleted. */
  | { readonly kind: 'tenant' };

/** A cache of tenant data: told what each commit changed, it drops the copies that made stale (here and on every instance). */
export interface ChangeListener {
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined;
}

/**
 * Where writes report what they changed and caches hear of it: the one place invalidation
 * happens. Services record changes in their unit of work (db/work.ts), which reports them
 * after the commit; no call site names another module's cache keys.
 */
export class Changes {
  private readonly listeners: ChangeListener[] = [];

  listen(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  async committed(tenant: TenantContext, changes: readonly Change[]): Promise<void> {
    await Promise.all(changes.flatMap((change) => this.listeners.map((listener) => listener.forget(tenant, change))));
  }
}
