/**
 * A rough strength estimate of configured secrets, to refuse the obviously weak ones in
 * production (SPEC §10): not a proof of randomness, a guard against "a" x 32, a word
 * repeated, an alphabet run or an all-zero key.
 */

/** Bits a secret must carry at least: 32 bytes of entropy-bearing material at 4 bits each (hex). */
export const MIN_SECRET_BITS = 128;
const MIN_DISTINCT_CHARACTERS = 10;
const MIN_DISTINCT_BYTES = 12;

/** The shortest unit the whole sequence repeats (a trailing partial unit allowed), if shorter than half of it. */
function repeatedUnit(items: ArrayLike<number>): number | undefined {
  const n = items.length;
  for (let period = 1; period <= n / 2; period++) {
    let repeats = true;
    for (let i = period; i < n && repeats; i++) repeats = items[i] === items[i - period];
    if (repeats) return period;
  }
  return undefined;
}

/** True when most neighbours differ by one step (abcdef..., 0123..., 0x00 0x01 ...). */
function mostlyRun(items: ArrayLike<number>): boolean {
  let steps = 0;
  for (let i = 1; i < items.length; i++) if (Math.abs(items[i]! - items[i - 1]!) === 1) steps++;
  return steps >= (items.length - 1) / 2;
}

/** Bits of a string drawn uniformly from the character classes it uses (hex taken as 16 symbols). */
export function estimatedBits(secret: string): number {
  let pool: number;
  if (/^[0-9a-f]+$/.test(secret) || /^[0-9A-F]+$/.test(secret)) pool = 16;
  else {
    pool = 0;
    if (/[a-z]/.test(secret)) pool += 26;
    if (/[A-Z]/.test(secret)) pool += 26;
    if (/[0-9]/.test(secret)) pool += 10;
    if (/[^a-zA-Z0-9]/.test(secret)) pool += 33;
  }
  return secret.length * Math.log2(Math.max(pool, 2));
}

/** Why a text secret (an HS* JWT secret) is weak, or undefined when it passes. */
export function weakSecretReason(secret: string): string | undefined {
  const codes = Array.from(secret, (c) => c.codePointAt(0)!);
  const unit = repeatedUnit(codes);
  if (unit !== undefined) return unit === 1 ? 'it is one character repeated' : `it is a ${unit}-character pattern repeated`;
  if (new Set(codes).size < MIN_DISTINCT_CHARACTERS) return `it has fewer than ${MIN_DISTINCT_CHARACTERS} distinct characters`;
  if (mostlyRun(codes)) return 'it is mostly a run of consecutive characters';
  const bits = estimatedBits(secret);
  if (bits < MIN_SECRET_BITS) return `it carries about ${Math.floor(bits)} bits, under ${MIN_SECRET_BITS}`;
  return undefined;
}

/** Why a binary key is weak (one byte repeated, a short pattern, few distinct bytes), or undefined. */
export function weakKeyReason(key: Uint8Array): string | undefined {
  const unit = repeatedUnit(key);
  if (unit !== undefined) return unit === 1 ? 'it is one byte repeated' : `it is a ${unit}-byte pattern repeated`;
  if (new Set(key).size < MIN_DISTINCT_BYTES) return `it has fewer than ${MIN_DISTINCT_BYTES} distinct bytes`;
  if (mostlyRun(key)) return 'it is mostly a run of consecutive bytes';
  return undefined;
}
