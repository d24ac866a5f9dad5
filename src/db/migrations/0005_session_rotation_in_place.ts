import { sql } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * Refresh tokens name their session (`rt_<session id>.<secret>`), so a rotation finds its row by
 * primary key and the token hashes need no index. Without them a rotation changes no indexed
 * column: PostgreSQL updates the row in place on its page (HOT) instead of writing an entry in
 * every index of the table, and pages written from now on keep room for it (fill factor 80;
 * existing pages are not rewritten). Refresh tokens issued by earlier versions of the service
 * named no session: that service version no longer accepts them, with or without this
 * migration (their holders sign in again; access tokens run to their expiry).
 */
export const sessionRotationInPlace: TenantMigration = {
  version: 5,
  name: 'session_rotation_in_place',
  statements: ({ schemaName }) => {
    const table = sql.id(schemaName, 'user_sessions');
    return [
      sql`ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS user_sessions_refresh_token_hash_uq`,
      sql`DROP INDEX IF EXISTS ${sql.id(schemaName, 'user_sessions_previous_refresh_token_hash_idx')}`,
      sql`ALTER TABLE ${table} SET (fillfactor = 80)`,
    ];
  },
};
