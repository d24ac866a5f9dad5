import { sql } from 'kysely';
import { idColumn } from './0001_core_tables.js';
import type { TenantMigration } from './migration.js';

/**
 * WebAuthn passkeys as a second factor (SPEC section 19): each user's registered credentials
 * (public keys only: the private key never leaves the authenticator) and the single-use
 * challenges of a registration or an assertion, five minutes each.
 */
export const passkeys: TenantMigration = {
  version: 14,
  name: 'passkeys',
  statements: ({ schema }) => [
    schema
      .createTable('mfa_passkeys')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      // The authenticator's credential ID, base64url as WebAuthn's JSON carries it.
      .addColumn('credential_id', 'text', (c) => c.notNull().unique())
      // COSE-encoded public key, as the attestation carried it.
      .addColumn('public_key', 'bytea', (c) => c.notNull())
      // The signature counter last seen: an assertion must raise it (unless the authenticator keeps none, always 0).
      .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('transports', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
      .addColumn('name', 'text', (c) => c.notNull())
      // Whether the credential is synced (a multi-device passkey) as the last assertion said.
      .addColumn('backed_up', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('last_used_at', 'timestamptz')
      .addCheckConstraint('mfa_passkeys_name_length_ck', sql`char_length(name) between 1 and 100`)
      .addCheckConstraint('mfa_passkeys_counter_ck', sql`counter >= 0`),
    schema.createIndex('mfa_passkeys_user_id_idx').on('mfa_passkeys').column('user_id'),
    schema
      .createTable('mfa_passkey_challenges')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('challenge', 'text', (c) => c.notNull().unique())
      // The login or enrolment step (`mfa_token`) the challenge belongs to; null for a signed-in user's own registration.
      .addColumn('mfa_challenge_id', 'uuid', (c) => c.references('mfa_challenges.id').onDelete('cascade'))
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addCheckConstraint('mfa_passkey_challenges_purpose_ck', sql`purpose in ('registration', 'authentication')`),
    schema.createIndex('mfa_passkey_challenges_user_id_idx').on('mfa_passkey_challenges').column('user_id'),
    schema.createIndex('mfa_passkey_challenges_mfa_challenge_id_idx').on('mfa_passkey_challenges').column('mfa_challenge_id'),
    schema.createIndex('mfa_passkey_challenges_expires_at_idx').on('mfa_passkey_challenges').column('expires_at'),
  ],
};
