import { sql, type SqlBool } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * At most one live default configuration per channel, kept by the database: earlier
 * duplicates lose the flag (the most recently updated default of each channel keeps it),
 * then a partial unique index holds the rule.
 */
export const singleDefaultChannel: TenantMigration = {
  version: 4,
  name: 'single_default_channel',
  statements: ({ schema, schemaName }) => {
    const table = sql.id(schemaName, 'channel_configs');
    return [
      sql`UPDATE ${table} c SET is_default = false
          WHERE c.is_default AND c.deleted_at IS NULL
            AND EXISTS (SELECT 1 FROM ${table} o
                        WHERE o.channel = c.channel AND o.is_default AND o.deleted_at IS NULL
                          AND (o.updated_at, o.id) > (c.updated_at, c.id))`,
      schema
        .createIndex('channel_configs_default_live_uq')
        .on('channel_configs')
        .unique()
        .column('channel')
        .where(sql<SqlBool>`is_default and deleted_at is null`),
    ];
  },
};
