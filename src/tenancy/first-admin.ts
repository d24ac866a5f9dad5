import type { Kysely } from 'kysely';
import { auditRow, SYSTEM_ACTOR } from '../audit/audit.js';
import { checkPasswordPolicy, hashPassword, type PasswordPolicy } from '../auth/passwords.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError, FieldChecks, text } from '../errors.js';
import { DEFAULT_SETTINGS } from '../settings/defaults.js';
import { insertAudited } from '../events/outbox.js';
import { checkEmail } from '../users/email.js';
import type { ProvisionHook } from './schema-manager.js';

export interface AdminInput {
  readonly email: string;
  readonly password: string;
  readonly first_name?: string;
  readonly last_name?: string;
}

function defaultSetting<T>(key: string): T {
  const setting = DEFAULT_SETTINGS.find((s) => s.key === key);
  if (!setting) throw new Error(`no default setting ${key}`);
  return setting.value as T;
}

/** A new tenant has no settings yet: its first admin's password meets the defaults. */
export const DEFAULT_PASSWORD_POLICY: PasswordPolicy = {
  minLength: defaultSetting('password.min_length'),
  maxLength: defaultSetting('password.max_length'),
  requireMixedCase: defaultSetting('password.require_mixed_case'),
  requireDigit: defaultSetting('password.require_digit'),
  requireSymbol: defaultSetting('password.require_symbol'),
};

function checkName(value: string | undefined, field: string): string | null {
  if (value === undefined) return null;
  const trimmed = value.trim();
  if (trimmed.length > 200) throw DomainError.invalid(field, text('reason.max_length', { limit: 200 }));
  return trimmed === '' ? null : trimmed;
}

/**
 * Validates and hashes the first admin up front (so bad input creates nothing), and returns
 * the hook that inserts it inside the provisioning transaction. An existing user with the
 * same email is left as it is: initialize stays idempotent and never resets a password.
 */
export async function prepareFirstAdmin(input: AdminInput, onCreated?: (userId: string) => void, checks = new FieldChecks()): Promise<ProvisionHook> {
  const email = checks.check(() => checkEmail(input.email, 'admin.email'))!;
  checks.check(() => checkPasswordPolicy(input.password, DEFAULT_PASSWORD_POLICY, 'admin.password'));
  const firstName = checks.check(() => checkName(input.first_name, 'admin.first_name')) ?? null;
  const lastName = checks.check(() => checkName(input.last_name, 'admin.last_name')) ?? null;
  checks.done();
  const passwordHash = await hashPassword(input.password);
  return async (db: Kysely<TenantDatabase>) => {
    const existing = await db
      .selectFrom('users')
      .select('id')
      .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (existing) return;
    const user = await db
      .insertInto('users')
      .values({
        email,
        password_hash: passwordHash,
        first_name: firstName,
        last_name: lastName,
        status: 'active',
        is_email_verified: true,
        email_verified_at: new Date(),
        password_changed_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const admin = await db.selectFrom('roles').select('id').where('name', '=', 'admin').where('deleted_at', 'is', null).executeTakeFirstOrThrow();
    await db.insertInto('user_roles').values({ user_id: user.id, role_id: admin.id }).execute();
    const entry = { action: 'users.create', entityType: 'users', entityId: user.id, after: { id: user.id, email, first_name: firstName, last_name: lastName, roles: ['admin'] }, metadata: { reason: 'first admin at provisioning' } };
    await insertAudited(db, auditRow(SYSTEM_ACTOR, entry), null);
    onCreated?.(user.id);
  };
}
