import { Algorithm, hash, verify } from '@node-rs/argon2';
import { DomainError, text } from '../errors.js';
import { traced } from '../observability/tracing.js';

/** argon2id at OWASP's minimum (m=19 MiB, t=2, p=1); runs on the libuv pool, off the event loop. */
export const ARGON2_OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return traced('argon2.hash', () => hash(password, ARGON2_OPTIONS));
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return traced('argon2.verify', () => verify(passwordHash, password).catch(() => false));
}

export interface PasswordPolicy {
  readonly minLength: number;
  readonly maxLength: number;
  readonly requireMixedCase: boolean;
  readonly requireDigit: boolean;
  readonly requireSymbol: boolean;
}

/** Checked before hashing; the message names the field and the rule broken. */
export function checkPasswordPolicy(password: string, policy: PasswordPolicy, field = 'password'): void {
  const length = [...password].length;
  if (length < policy.minLength) throw DomainError.invalid(field, text('reason.min_length', { limit: policy.minLength }));
  if (length > policy.maxLength) throw DomainError.invalid(field, text('reason.max_length', { limit: policy.maxLength }));
  if (policy.requireMixedCase && !(/\p{Ll}/u.test(password) && /\p{Lu}/u.test(password))) {
    throw DomainError.invalid(field, text('reason.password_mixed_case'));
  }
  if (policy.requireDigit && !/\p{Nd}/u.test(password)) throw DomainError.invalid(field, text('reason.password_digit'));
  if (policy.requireSymbol && !/[^\p{L}\p{Nd}]/u.test(password)) {
    throw DomainError.invalid(field, text('reason.password_symbol'));
  }
}
