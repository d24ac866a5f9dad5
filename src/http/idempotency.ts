import { createHmac } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError } from '../errors.js';
import { setEtag } from './etag.js';
import { requirePrincipal, requireTenant } from './tenant-auth.js';

export interface Outcome<T> {
  readonly status: number;
  readonly body: T;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** HMAC key of request fingerprints (a body may hold a password: no plain hash is kept). */
    idempotencyKey: Buffer;
  }
}

const KEY_TTL_MS = 24 * 3_600_000;
const IN_PROGRESS = 102;
/** Expired rows of the tenant removed by each claim, beside the reused key's own. */
const PURGE_BATCH = 100;

/** The stored fingerprint of a request: an HMAC, so a database reader cannot test guesses of the body. */
export function requestFingerprint(key: Buffer, method: string, path: string, body: string): string {
  return createHmac('sha256', key).update(`${method} ${path} ${body}`).digest('hex');
}

/**
 * Runs a POST's change in one transaction, honouring `Idempotency-Key`: the key is claimed
 * first (a concurrent duplicate waits on it), the change runs, and its answer is stored in the
 * same transaction. A replay gets the stored status and body; the same key with another
 * request gets 422. A change that fails stores nothing, so it can be retried with the key.
 * `fingerprint` stands for the request body where the body is not JSON (an uploaded file).
 */
export async function idempotent<T>(
  db: Kysely<PlatformDatabase>,
  request: FastifyRequest,
  change: (trx: Transaction<TenantDatabase>) => Promise<Outcome<T>>,
  fingerprint?: string,
): Promise<Outcome<T>> {
  const tenant = requireTenant(request);
  const tdb = tenantDb(db, tenant.schema);
  const header = request.headers['idempotency-key'];
  if (header === undefined) return tdb.transaction().execute(change);
  if (typeof header !== 'string' || header.length < 1 || header.length > 255) throw DomainError.invalid('Idempotency-Key', 'must be 1-255 characters');

  const principal = requirePrincipal(request);
  const scope = principal.apiKeyId ? `api_key:${principal.apiKeyId}` : `user:${principal.userId}`;
  const path = request.url.split('?')[0] ?? request.url;
  const requestHash = requestFingerprint(request.server.idempotencyKey, request.method, path, fingerprint ?? JSON.stringify(request.body ?? null));

  return tdb.transaction().execute(async (trx) => {
    // This key if it expired, and a bounded batch of the tenant's other expired rows (rows locked
    // by a concurrent claim are skipped, not waited for): the table never grows without end.
    const now = new Date();
    await trx
      .deleteFrom('idempotency_keys')
      .where('expires_at', '<=', now)
      .where((eb) =>
        eb.or([
          eb.and([eb('scope', '=', scope), eb('key', '=', header)]),
          eb('id', 'in', eb.selectFrom('idempotency_keys').select('id').where('expires_at', '<=', now).orderBy('expires_at').limit(PURGE_BATCH).forUpdate().skipLocked()),
        ]),
      )
      .execute();
    const claimed = await trx
      .insertInto('idempotency_keys')
      .values({ scope, key: header, method: request.method, path, request_hash: requestHash, status_code: IN_PROGRESS, expires_at: new Date(Date.now() + KEY_TTL_MS) })
      .onConflict((oc) => oc.columns(['scope', 'key']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!claimed) {
      const stored = await trx.selectFrom('idempotency_keys').select(['request_hash', 'status_code', 'response']).where('scope', '=', scope).where('key', '=', header).executeTakeFirst();
      if (!stored) throw DomainError.conflict('the Idempotency-Key is in use by a request that has not finished; retry');
      if (stored.request_hash !== requestHash) throw new DomainError('unprocessable', 'this Idempotency-Key was used with a different request');
      return { status: stored.status_code, body: stored.response as T };
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

/**
 * Answers a create: the stored (or fresh) status and body without its row version, which goes
 * to the ETag, and a Location naming the new resource.
 */
export function created<T extends { id: string; version: number }>(request: FastifyRequest, reply: FastifyReply, outcome: Outcome<T>, collection = request.url.split('?')[0]) {
  const { version, ...body } = outcome.body;
  setEtag(reply, version);
  reply.status(outcome.status).header('location', `${collection}/${body.id}`);
  return body;
}
