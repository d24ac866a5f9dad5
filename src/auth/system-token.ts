import { randomUUID } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { DomainError } from '../errors.js';
import type { JwtKeys } from './keys.js';

/** A platform caller, as proven by a system token issued by auth-service (or our CLI). */
export interface SystemActor {
  readonly subject: string;
  readonly tokenId: string | undefined;
}

export async function issueSystemToken(keys: JwtKeys, options: { subject: string; ttlSeconds: number }): Promise<string> {
  return new SignJWT({ type: 'system' })
    .setProtectedHeader({ alg: keys.algorithm, typ: 'JWT' })
    .setSubject(options.subject)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + options.ttlSeconds)
    .sign(keys.signingKey);
}

/**
 * Accepts only the configured algorithm, `type: "system"`, and a present, unexpired `exp`.
 * Every failure is the same 401 to the caller; the reason goes to the log through `detail`.
 */
export async function verifySystemToken(keys: JwtKeys, token: string): Promise<SystemActor> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, keys.verificationKey, { algorithms: [keys.algorithm], requiredClaims: ['exp'] }));
  } catch (error) {
    const reason = error instanceof errors.JWTExpired ? 'token expired' : 'invalid token';
    throw new DomainError('unauthenticated', reason);
  }
  // A valid token of another kind (a tenant token) is authenticated but not allowed here.
  if (payload.type !== 'system') throw new DomainError('forbidden', 'a system token is required');
  return { subject: typeof payload.sub === 'string' ? payload.sub : 'system', tokenId: payload.jti };
}
