import type { FastifyRequest } from 'fastify';
import { DomainError, text } from '../errors.js';
import { bearerToken } from '../http/bearer.js';
import type { JwtKeys } from './keys.js';
import { verifySystemToken } from './system-token.js';

/** preHandler for platform routes: a valid system token, or 401/403. */
export function requireSystemToken(keys: JwtKeys) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new DomainError('auth.credentials_required', text('detail.bearer_required'));
    request.systemActor = await verifySystemToken(keys, token);
  };
}
