import { DomainError, text } from '../errors.js';

const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Trims and checks an address; case is kept (uniqueness is on lower(email) in the database). */
export function checkEmail(input: string, field = 'email'): string {
  const email = input.trim();
  if (email.length > 254 || !EMAIL_PATTERN.test(email)) throw DomainError.invalid(field, text('reason.email'));
  return email;
}
