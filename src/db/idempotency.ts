import type { Kysely, Transaction } from 'kysely';
import { DomainError } from '../errors.js';
import type { TenantDatabase } from './types.js';

/** A create's answer: the status and body, fresh or replayed. */
export interface Outcome<T> {
  readonly status: number;
  readonly body: T;
  /** True when the answer is the stored one of an earlier request with the same key. */
  readonly replayed?: boolean;
}

/** An `Idempotency-Key` as a service sees it: who sent it, the key, and the request it stands for. */
export interface IdempotencyKey {
  /** `user:<id>` or `api_key:<id>`: keys of different callers never meet. */
  readonly scope: string;
  readonly key: string;
  readonly method: string;
  readonly path: string;
  /** An HMAC of the request (never a plain hash: a body may hold a password). */
  readonly fingerprint: string;
}

const KEY_TTL_MS = 24 * 3_600_000;
const IN_PROGRESS = 102;
/** Expired rows of the tenant removed by each claim, beside the reused key's own. */
const PURGE_BATCH = 100;

/**
 * Runs a create in one transaction, honouring an idempotency key: the key is claimed first (a
 * concurrent duplicate waits on it), the change runs, and its answer is stored in the same
 * transaction. A replay gets the stored status and body; the same key with another request gets
 * 422. A change that fails stores nothing, so it can be retried with the key.
 */
export async function once<T>(db: Kysely<TenantDatabase>, key: IdempotencyKey | undefined, change: (trx: Transaction<TenantDatabase>) => Promise<Outcome<T>>): Promise<Outcome<T>> {
  if (!key) return db.transaction().execute(change);
  const { scope, key: name, method, path, fingerprint } = key;
  return db.transaction().execute(async (trx) => {
    // This key if it expired, and a bounded batch of the tenant's other expired rows (rows locked
    // by a concurrent claim are skipped, not waited for): the table never grows without end.
    const now = new Date();
    await trx
      .deleteFrom('idempotency_keys')
      .where('expires_at', '<=', now)
      .where((eb) =>
        eb.or([
          eb.and([eb('scope', '=', scope), eb('key', '=', name)]),
          eb('id', 'in', eb.selectFrom('idempotency_keys').select('id').where('expires_at', '<=', now).orderBy('expires_at').limit(PURGE_BATCH).forUpdate().skipLocked()),
        ]),
      )
      .execute();
    const claimed = await trx
      .insertInto('idempotency_keys')
      .values({ scope, key: name, method, path, request_hash: fingerprint, status_code: IN_PROGRESS, expires_at: new Date(Date.now() + KEY_TTL_MS) })
      .onConflict((oc) => oc.columns(['scope', 'key']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!claimed) {
      const stored = await trx.selectFrom('idempotency_keys').select(['request_hash', 'status_code', 'response']).where('scope', '=', scope).where('key', '=', name).executeTakeFirst();
      if (!stored) throw DomainError.conflict('idempotency.in_progress');
      if (stored.request_hash !== fingerprint) throw new DomainError('idempotency.key_reused');
      return { status: stored.status_code, body: stored.response as T, replayed: true };
    }
    const outcome = await change(trx);
    await trx
      .updateTable('idempotency_keys')
      .set({ status_code: outcome.status, response: JSON.stringify(outcome.body ?? null), updated_at: new Date() })
      .where('id', '=', claimed.id)
      .execute();
    return outcome;
  });
}
