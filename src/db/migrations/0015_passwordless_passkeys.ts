import type { TenantMigration } from './migration.js';

/**
 * Passwordless sign-in with a passkey (SPEC section 19): its challenge is asked for before anyone
 * is known, so a challenge's user may be empty. Such a challenge is only ever taken by
 * `auth/passkey/login`, which finds the user from the credential the assertion names.
 */
export const passwordlessPasskeys: TenantMigration = {
  version: 15,
  name: 'passwordless_passkeys',
  statements: ({ schema }) => [schema.alterTable('mfa_passkey_challenges').alterColumn('user_id', (c) => c.dropNotNull())],
};
