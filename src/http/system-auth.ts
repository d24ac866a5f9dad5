import type { FastifyRequest } from 'fastify';
import type { JwtKeys } from '../auth/keys.js';
import { verifySystemToken, type SystemActor } from '../auth/system-token.js';
import { DomainError } from '../errors.js';
import { bearerToken } from './bearer.js';

declare module 'fastify' {
  interface FastifyRequest {
    systemActor: SystemActor | null;
  }
}

/** preHandler for platform routes: a valid system token, or 401/403. */
export function requireSystemToken(keys: JwtKeys) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new DomainError('unauthenticated', 'a Bearer token is required');
    request.systemActor = await verifySystemToken(keys, token);
  };
}
