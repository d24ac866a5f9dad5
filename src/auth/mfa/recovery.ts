import { randomBytes } from 'node:crypto';
import { sha256 } from '../tokens.js';

/** Recovery codes a user gets at once (SPEC section 19: ten). */
export const RECOVERY_CODE_COUNT = 10;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * One recovery code: 80 random bits as 16 base32 characters in groups of four
 * (`k7qm-2xdf-9...`). With that much entropy a plain SHA-256 is enough to store it: nobody
 * finds a code from its hash by trying codes.
 */
function newCode(): string {
  const bytes = randomBytes(16);
  let out = '';
  for (let i = 0; i < 16; i++) out += ALPHABET[bytes[i]! & 31];
  return out.match(/.{4}/g)!.join('-');
}

/** A code as typed, normalized: case, spaces and dashes do not matter. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}

export const recoveryCodeHash = (code: string): string => sha256(`mfa-recovery:${normalizeRecoveryCode(code)}`);

/** A fresh set of codes (shown once) and their hashes (stored). */
export function newRecoveryCodes(): { codes: string[]; hashes: string[] } {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newCode);
  return { codes, hashes: codes.map(recoveryCodeHash) };
}
