import { sql } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * Every refresh token a session has retired, so that presenting any of them (not only the last
 * one) is recognised as reuse and revokes the session, while a token naming the session with a
 * made-up secret stays merely invalid. A rotation adds one row in the statement that rotates;
 * a revocation deletes the session's rows, and a periodic purge those of expired and idle
 * sessions. No foreign key: sessions are never deleted, and the rotation's insert then needs
 * no lookup of user_sessions beside its own update.
 */
export const refreshTokenHistory: TenantMigration = {
  version: 6,
  name: 'refresh_token_history',
  statements: ({ schema }) => [
    schema
      .createTable('refresh_token_history')
      .addColumn('session_id', 'uuid', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('refresh_token_history_pkey', ['session_id', 'token_hash']),
  ],
};
