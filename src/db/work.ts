import type { Kysely, Transaction } from 'kysely';
import type { Change, Changes } from '../cache/changes.js';
import type { TenantContext } from '../tenancy/directory.js';
import { tenantDb } from './database.js';
import type { PlatformDatabase } from './platform-types.js';
import type { TenantDatabase } from './types.js';

/**
 * A dry run of a change (access/preview.ts): told which users the change may move before it
 * writes, it reads what moved once the change has run, and rolls the transaction back.
 */
export interface Rehearsal {
  watch(trx: Kysely<TenantDatabase>, userIds: readonly string[]): Promise<void>;
  /** Runs after the change, in its transaction; always throws, so nothing of the change is kept. */
  finish(trx: Kysely<TenantDatabase>): Promise<never>;
}

/** One transaction of a tenant, and what it changes for the caches. */
export class Work {
  readonly recorded: Change[] = [];

  constructor(
    readonly trx: Transaction<TenantDatabase>,
    readonly tenant: TenantContext,
    private readonly rehearsal?: Rehearsal,
  ) {}

  /** Records what this write changes; the caches drop their copies once it commits (usable detached). */
  readonly changed = (...changes: Change[]): void => {
    this.recorded.push(...changes);
  };

  /**
   * Names the users whose permissions the change may move, after its checks and before its
   * writes: a dry run reads their permissions now. A real run does nothing (nor asks who).
   */
  readonly watch = async (userIds: readonly string[] | (() => Promise<readonly string[]>)): Promise<void> => {
    if (this.rehearsal) await this.rehearsal.watch(this.trx, typeof userIds === 'function' ? await userIds() : userIds);
  };
}

/**
 * Runs `fn` in one transaction of the tenant; after the commit, the caches hear what it changed.
 * With a rehearsal (a dry run), the transaction is rolled back once `fn` has run: its outcome
 * leaves as the rehearsal's error, and nothing is committed or heard.
 */
export async function transact<T>(db: Kysely<PlatformDatabase>, changes: Changes, tenant: TenantContext, fn: (work: Work) => Promise<T>, rehearsal?: Rehearsal): Promise<T> {
  let work: Work | undefined;
  const result = await tenantDb(db, tenant.schema)
    .transaction()
    .execute(async (trx) => {
      const out = await fn((work = new Work(trx, tenant, rehearsal)));
      if (rehearsal) await rehearsal.finish(trx);
      return out;
    });
  await changes.committed(tenant, work!.recorded);
  return result;
}
