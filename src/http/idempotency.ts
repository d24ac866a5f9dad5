import { createHmac } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdempotencyKey, Outcome } from '../db/idempotency.js';
import { DomainError, text } from '../errors.js';
import { requirePrincipal } from './context.js';
import { setEtag } from './etag.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** HMAC key of request fingerprints (a body may hold a password: no plain hash is kept). */
    idempotencyKey: Buffer;
  }
}

/** The stored fingerprint of a request: an HMAC, so a database reader cannot test guesses of the body. */
export function requestFingerprint(key: Buffer, method: string, path: string, body: string): string {
  return createHmac('sha256', key).update(`${method} ${path} ${body}`).digest('hex');
}

/**
 * The request's `Idempotency-Key`, for the service to honour (db/idempotency.ts), or undefined
 * when it sent none. `fingerprint` stands for the body where it is not JSON (an uploaded file).
 */
export function idempotencyOf(request: FastifyRequest, fingerprint?: string): IdempotencyKey | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || header.length < 1 || header.length > 255) throw DomainError.invalid('Idempotency-Key', text('reason.idempotency_key'));
  const principal = requirePrincipal(request);
  const path = request.url.split('?')[0] ?? request.url;
  return {
    scope: principal.apiKeyId ? `api_key:${principal.apiKeyId}` : `user:${principal.userId}`,
    key: header,
    method: request.method,
    path,
    fingerprint: requestFingerprint(request.server.idempotencyKey, request.method, path, fingerprint ?? JSON.stringify(request.body ?? null)),
  };
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
