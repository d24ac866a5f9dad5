import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { sha256 } from '../auth/tokens.js';
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

const KEY_TTL_MS = 24 * 3_600_000;
const IN_PROGRESS = 102;

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
  const requestHash = sha256(`${request.method} ${path} ${fingerprint ?? JSON.stringify(request.body ?? null)}`);

  return tdb.transaction().execute(async (trx) => {
    await trx.deleteFrom('idempotency_keys').where('scope', '=', scope).where('key', '=', header).where('expires_at', '<=', new Date()).execute();
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
