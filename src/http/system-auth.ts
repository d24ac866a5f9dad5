import type { FastifyRequest } from 'fastify';
import type { JwtKeys } from '../auth/keys.js';
import { verifySystemToken, type SystemActor } from '../auth/system-token.js';
import { DomainError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    systemActor: SystemActor | null;
  }
}

export function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) throw new DomainError('unauthenticated', 'a Bearer token is required');
  return match[1];
}

/** preHandler for platform routes: a valid system token, or 401/403. */
export function requireSystemToken(keys: JwtKeys) {
  return async (request: FastifyRequest): Promise<void> => {
    request.systemActor = await verifySystemToken(keys, bearerToken(request));
  };
}
