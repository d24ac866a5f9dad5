import { createHash, createHmac, randomBytes, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { DomainError, text } from '../errors.js';
import type { JwtAlgorithm } from '../config.js';
import type { JwtKeys } from './keys.js';

/** The claims of a tenant access token (SPEC section 5). */
export interface AccessClaims {
  readonly type: 'tenant';
  readonly tenant_slug: string;
  readonly user_id: string;
  readonly sub: string;
  readonly sid: string;
  readonly roles: string[];
  readonly permissions: string[];
  readonly iat: number;
  readonly exp: number;
}

const HMAC_HASH: Partial<Record<JwtAlgorithm, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/**
 * Signs a compact JWS with node:crypto, synchronously: several times cheaper than WebCrypto's
 * asynchronous sign for the small tokens issued on every login and refresh. The tokens are
 * standard (RFC 7515/7519); jose verifies them.
 */
function signCompact(keys: JwtKeys, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const hmac = HMAC_HASH[keys.algorithm];
  let signature: Buffer;
  if (hmac) signature = createHmac(hmac, keys.signingKey as Uint8Array | KeyObject).update(input).digest();
  else if (keys.algorithm === 'RS256') signature = cryptoSign('sha256', Buffer.from(input), keys.signingKey as KeyObject);
  else signature = cryptoSign(null, Buffer.from(input), keys.signingKey as KeyObject);
  return `${input}.${signature.toString('base64url')}`;
}

export async function signAccessToken(
  keys: JwtKeys,
  input: { tenantSlug: string; userId: string; sessionId: string; roles: string[]; permissions: readonly string[]; ttlSeconds: number },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return signCompact(
    keys,
    { alg: keys.algorithm, typ: 'JWT', ...(keys.keyId ? { kid: keys.keyId } : {}) },
    { type: 'tenant', tenant_slug: input.tenantSlug, user_id: input.userId, sid: input.sessionId, roles: input.roles, permissions: input.permissions, sub: input.userId, jti: randomUUID(), iat: now, exp: now + input.ttlSeconds },
  );
}

/**
 * Verifies signature (configured algorithm only), `exp` (required), `nbf`, and that this is
 * a tenant token of the route's tenant: 401 for a bad token, 403 for a valid one of another
 * kind or tenant.
 */
export async function verifyAccessToken(keys: JwtKeys, token: string, tenantSlug: string): Promise<AccessClaims> {
  const payload = await verifiedPayload(keys, token);
  const problem = claimsProblem(payload, tenantSlug);
  if (problem) throw problem;
  return payload as unknown as AccessClaims;
}

/**
 * verifyAccessToken without a promise, from tokens verified before: the claims when the token
 * is remembered, current and a tenant token of this tenant; undefined otherwise (verifyAccessToken
 * then decides, with its error).
 */
export function rememberedAccessClaims(keys: JwtKeys, token: string, tenantSlug: string): AccessClaims | undefined {
  const payload = remembered(keys, token);
  return payload && current(payload) && !claimsProblem(payload, tenantSlug) ? (payload as unknown as AccessClaims) : undefined;
}

function claimsProblem(payload: JWTPayload, tenantSlug: string): DomainError | undefined {
  if (payload.type === 'system') return new DomainError('auth.wrong_token_kind', text('detail.system_token_on_tenant_route'));
  if (payload.type !== 'tenant') return new DomainError('auth.wrong_token_kind', text('detail.tenant_token_required'));
  if (payload.tenant_slug !== tenantSlug) return new DomainError('auth.wrong_tenant');
  if (typeof payload.sid !== 'string' || typeof payload.sub !== 'string') return new DomainError('auth.invalid_token');
  return undefined;
}

/**
 * Signature checks are the costliest step of authenticating a request; a client sends the same
 * token many times, so verified tokens are remembered until they expire. An entry is found by
 * the token's signature (hashing a whole token, which carries its permissions, on every request
 * cost more than the lookup: docs/BENCHMARKS.md) and is a hit only
 * when the whole token, header and payload included, is the same: a forged or altered token is
 * never a hit.
 */
const verified = new Map<string, { readonly token: string; readonly payload: JWTPayload }>();
const VERIFIED_MAX = 20_000;

const signatureOf = (token: string) => token.slice(token.lastIndexOf('.') + 1);

/** The payload of `token` when it was verified with these keys, whether or not it is current. */
function remembered(keys: JwtKeys, token: string): JWTPayload | undefined {
  if (keys !== lastKeys) return undefined;
  const entry = verified.get(signatureOf(token));
  return entry && entry.token === token ? entry.payload : undefined;
}

/** Within the verified payload's validity (`exp`, `nbf`), now. */
function current(payload: JWTPayload): boolean {
  const now = Date.now() / 1000;
  return (payload.exp ?? 0) > now && (payload.nbf === undefined || payload.nbf <= now);
}

async function verifiedPayload(keys: JwtKeys, token: string): Promise<JWTPayload> {
  const known = remembered(keys, token);
  if (known) {
    if (current(known)) return known;
    verified.delete(signatureOf(token));
    throw new DomainError('auth.token_expired');
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys.verificationKey, { algorithms: [keys.algorithm], requiredClaims: ['exp'] }));
  } catch (error) {
    throw error instanceof errors.JWTExpired ? new DomainError('auth.token_expired') : new DomainError('auth.invalid_token');
  }
  if (keys !== lastKeys) {
    verified.clear();
    lastKeys = keys;
  }
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value as string);
  verified.set(signatureOf(token), { token, payload });
  return payload;
}
let lastKeys: JwtKeys | undefined;

const TOKEN_BYTES = 32;
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/**
 * Opaque random secrets (refresh, reset, verification tokens): 256 bits, stored only as hashes.
 * The bytes come from a pool filled 4 KiB at a time (one call to the CSPRNG per 128 tokens, a
 * call of its own being a measurable part of a refresh); each byte is used once.
 */
export function randomToken(prefix: string): string {
  return `${prefix}${randomSecret().toString('base64url')}`;
}

/** 256 fresh random bits from the pool (a view of it: copy before keeping them past the next call). */
export function randomSecret(): Buffer {
  if (randomOffset + TOKEN_BYTES > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomOffset = 0;
  }
  const start = randomOffset;
  randomOffset += TOKEN_BYTES;
  return randomPool.subarray(start, randomOffset);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
