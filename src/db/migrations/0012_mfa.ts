import { sql } from 'kysely';
import { idColumn, timestampColumns } from './0001_core_tables.js';
import type { TenantMigration } from './migration.js';

/**
 * Multi-factor authentication (SPEC section 19): a user's TOTP secret (encrypted with the
 * service's secret box, like channel secrets), their single-use recovery codes (SHA-256 of
 * 80-bit codes), and the short-lived single-use tokens of the login step-up and the forced
 * enrolment (SHA-256 of the token only).
 */
export const mfa: TenantMigration = {
  version: 12,
  name: 'mfa',
  statements: ({ schema }) => [
    schema
      .createTable('mfa_totp')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull().unique().references('users.id').onDelete('cascade'))
      .addColumn('encrypted_secret', 'text', (c) => c.notNull())
      // Null while the enrolment waits for its first code.
      .addColumn('confirmed_at', 'timestamptz')
      // The 30-second step of the last code accepted: a code of that step or an earlier one is a replay.
      .addColumn('last_used_step', 'integer')
      .$call(timestampColumns),
    schema
      .createTable('mfa_recovery_codes')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('code_hash', 'text', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addUniqueConstraint('mfa_recovery_codes_user_code_uq', ['user_id', 'code_hash']),
    schema
      .createTable('mfa_challenges')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addCheckConstraint('mfa_challenges_purpose_ck', sql`purpose in ('login', 'enrolment')`),
    schema.createIndex('mfa_challenges_user_id_idx').on('mfa_challenges').column('user_id'),
    schema.createIndex('mfa_challenges_expires_at_idx').on('mfa_challenges').column('expires_at'),
  ],
};
