import { randomUUID } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { DomainError, text } from '../errors.js';
import type { JwtKeys } from './keys.js';

/** A platform caller, as proven by a system token issued by auth-service (or our CLI). */
export interface SystemActor {
  readonly subject: string;
  readonly tokenId: string | undefined;
}

/** Longest accepted lifetime of a system token (`exp - iat`), in seconds. */
export const SYSTEM_TOKEN_MAX_TTL_SECONDS = 3600;
const CLOCK_SKEW_SECONDS = 30;
export const DEFAULT_SYSTEM_TOKEN_ISSUER = 'auth-service';
export const DEFAULT_SYSTEM_TOKEN_AUDIENCE = 'system-service';

function claimsOf(keys: JwtKeys) {
  return { issuer: keys.systemToken?.issuer ?? DEFAULT_SYSTEM_TOKEN_ISSUER, audience: keys.systemToken?.audience ?? DEFAULT_SYSTEM_TOKEN_AUDIENCE };
}

export async function issueSystemToken(keys: JwtKeys, options: { subject: string; ttlSeconds: number }): Promise<string> {
  if (!(options.ttlSeconds > 0 && options.ttlSeconds <= SYSTEM_TOKEN_MAX_TTL_SECONDS)) throw new RangeError(`a system token lives 1-${SYSTEM_TOKEN_MAX_TTL_SECONDS} s`);
  const { issuer, audience } = claimsOf(keys);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ type: 'system' })
    .setProtectedHeader({ alg: keys.algorithm, typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(options.subject)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + options.ttlSeconds)
    .sign(keys.signingKey);
}

/**
 * Accepts only the configured algorithm, `type: "system"`, the configured `iss` and `aud`, and
 * present `iat` and unexpired `exp` at most an hour apart (a leaked long-lived token is refused).
 * Every failure is a 401 whose reason goes to the log; a valid tenant token is a 403.
 */
export async function verifySystemToken(keys: JwtKeys, token: string): Promise<SystemActor> {
  const { issuer, audience } = claimsOf(keys);
  let payload;
  try {
    ({ payload } = await jwtVerify(token, keys.verificationKey, { algorithms: [keys.algorithm], requiredClaims: ['exp'] }));
  } catch (error) {
    throw new DomainError('auth.invalid_system_token', text(error instanceof errors.JWTExpired ? 'error.auth.token_expired' : 'error.auth.invalid_token'));
  }
  // A valid token of another kind (a tenant token) is authenticated but not allowed here.
  if (payload.type !== 'system') throw new DomainError('auth.wrong_token_kind', text('detail.system_token_required'));
  const now = Math.floor(Date.now() / 1000);
  const audiences = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
  const { iat, exp } = payload as { iat?: unknown; exp: number };
  // An `iat` ahead of the clock would stretch the one-hour bound: refused beyond a small skew.
  const problem =
    payload.iss !== issuer ? 'wrong or missing iss'
    : !audiences.includes(audience) ? 'wrong or missing aud'
    : typeof iat !== 'number' || !Number.isFinite(iat) ? 'missing iat'
    : iat > now + CLOCK_SKEW_SECONDS ? 'iat in the future'
    : exp - iat <= 0 || exp - iat > SYSTEM_TOKEN_MAX_TTL_SECONDS ? `lifetime over ${SYSTEM_TOKEN_MAX_TTL_SECONDS} s`
    : undefined;
  if (problem) throw new DomainError('auth.invalid_system_token', text('detail.system_token_claim', { problem }));
  return { subject: typeof payload.sub === 'string' ? payload.sub : 'system', tokenId: payload.jti };
}
