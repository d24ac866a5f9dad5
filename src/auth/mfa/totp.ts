import { authenticator } from 'otplib';

/** RFC 6238 as SPEC section 19 fixes it: SHA-1, 6 digits, 30-second steps. */
export const TOTP_STEP_SECONDS = 30;
/** Steps of clock drift accepted either way: one. */
const DRIFT_STEPS = 1;
const SECRET_BYTES = 20;
const CODE = /^[0-9]{6}$/;

const checker = authenticator.clone({ window: DRIFT_STEPS, step: TOTP_STEP_SECONDS, digits: 6 });

/** A new shared secret (160 bits, base32, as authenticator apps take it). */
export function newTotpSecret(): string {
  return authenticator.generateSecret(SECRET_BYTES);
}

/** The `otpauth://` URI an authenticator app reads (as a QR code, usually). */
export function otpauthUrl(secret: string, account: string, issuer: string): string {
  return checker.keyuri(account, issuer, secret);
}

export const isTotpCode = (code: string): boolean => CODE.test(code);

/**
 * The 30-second step `code` belongs to, within one step of `now`, or null. The caller refuses
 * a step at or before the last one it accepted (a replay).
 */
export function totpStep(secret: string, code: string, now = Date.now()): number | null {
  if (!isTotpCode(code)) return null;
  const delta = checker.clone({ epoch: now }).checkDelta(code, secret);
  return delta === null ? null : Math.floor(now / 1000 / TOTP_STEP_SECONDS) + delta;
}
