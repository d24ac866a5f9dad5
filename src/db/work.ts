import type { Kysely, Transaction } from 'kysely';
import type { Change, Changes } from '../cache/changes.js';
import type { TenantContext } from '../tenancy/directory.js';
import { tenantDb } from './database.js';
import type { PlatformDatabase } from './platform-types.js';
import type { TenantDatabase } from './types.js';

/** One transaction of a tenant, and what it changes for the caches. */
export class Work {
  readonly recorded: Change[] = [];

  constructor(
    readonly trx: Transaction<TenantDatabase>,
    readonly tenant: TenantContext,
  ) {}

  /** Records what this write changes; the caches drop their copies once it commits (usable detached). */
  readonly changed = (...changes: Change[]): void => {
    this.recorded.push(...changes);
  };
}

/** Runs `fn` in one transaction of the tenant; after the commit, the caches hear what it changed. */
export async function transact<T>(db: Kysely<PlatformDatabase>, changes: Changes, tenant: TenantContext, fn: (work: Work) => Promise<T>): Promise<T> {
  let work: Work | undefined;
  const result = await tenantDb(db, tenant.schema)
    .transaction()
    .execute((trx) => fn((work = new Work(trx, tenant))));
  await changes.committed(tenant, work!.recorded);
  return result;
}
