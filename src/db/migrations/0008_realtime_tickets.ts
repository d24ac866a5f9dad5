import { sql } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * Single-use tickets that open a realtime WebSocket (browsers cannot set headers on one): only
 * the SHA-256 of a ticket is stored, with the session it stands for, for a minute.
 */
export const realtimeTickets: TenantMigration = {
  version: 8,
  name: 'realtime_tickets',
  statements: ({ schema }) => [
    schema
      .createTable('realtime_tickets')
      .addColumn('ticket_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('session_id', 'uuid', (c) => c.notNull().references('user_sessions.id').onDelete('cascade'))
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`)),
    schema.createIndex('realtime_tickets_expires_at_idx').on('realtime_tickets').column('expires_at'),
    // For the cascades from users and sessions.
    schema.createIndex('realtime_tickets_user_id_idx').on('realtime_tickets').column('user_id'),
    schema.createIndex('realtime_tickets_session_id_idx').on('realtime_tickets').column('session_id'),
  ],
};
