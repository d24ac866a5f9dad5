import { sql } from 'kysely';
import { idColumn, lengthBetween, timestampColumns } from './0001_core_tables.js';
import type { TenantMigration } from './migration.js';

/**
 * Responses of POST requests sent with an Idempotency-Key, per caller: a replay gets the same
 * status and body, and the row is written in the same transaction as the change it answers.
 */
export const idempotencyKeys: TenantMigration = {
  version: 3,
  name: 'idempotency_keys',
  statements: ({ schema }) => [
    schema
      .createTable('idempotency_keys')
      .$call(idColumn)
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('request_hash', 'text', (c) => c.notNull())
      .addColumn('status_code', 'integer', (c) => c.notNull())
      .addColumn('response', 'jsonb')
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .$call(timestampColumns)
      .addUniqueConstraint('idempotency_keys_scope_key_uq', ['scope', 'key'])
      .addCheckConstraint('idempotency_keys_key_length_ck', lengthBetween('key', 1, 255))
      .addCheckConstraint('idempotency_keys_status_ck', sql`status_code between 100 and 599`),
    schema.createIndex('idempotency_keys_expires_at_idx').on('idempotency_keys').column('expires_at'),
  ],
};
