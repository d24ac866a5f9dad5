import { sql } from 'kysely';
import { idColumn, timestampColumns } from './0001_core_tables.js';
import type { TenantMigration } from './migration.js';

/**
 * The transactional outbox (an event per audited change, written in its transaction, in order
 * by `seq`), the tenant's webhook endpoints and one delivery row per endpoint and event.
 */
export const eventsAndWebhooks: TenantMigration = {
  version: 7,
  name: 'events_and_webhooks',
  statements: ({ schema }) => [
    schema
      .createTable('outbox_events')
      .addColumn('seq', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
      .addColumn('id', 'text', (c) => c.notNull().unique())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('actor_user_id', 'uuid')
      .addColumn('data', 'jsonb', (c) => c.notNull())
      .addColumn('occurred_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('dispatched_at', 'timestamptz'),
    // The dispatcher's queue: events not yet handed to endpoints and sockets, oldest first.
    schema.createIndex('outbox_events_pending_idx').on('outbox_events').column('seq').where(sql.ref('dispatched_at'), 'is', null),
    schema.createIndex('outbox_events_dispatched_at_idx').on('outbox_events').column('dispatched_at'),
    schema
      .createTable('webhooks')
      .$call(idColumn)
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('events', sql`text[]`, (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
      .addColumn('encrypted_secret', 'text', (c) => c.notNull())
      .addColumn('failing_since', 'timestamptz')
      .addColumn('disabled_reason', 'text')
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
      .$call(timestampColumns)
      .addCheckConstraint('webhooks_url_ck', sql`char_length(url) between 8 and 2000`)
      .addCheckConstraint('webhooks_events_ck', sql`cardinality(events) between 1 and 100`),
    schema
      .createTable('webhook_deliveries')
      .$call(idColumn)
      .addColumn('webhook_id', 'uuid', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
      .addColumn('event_seq', 'bigint', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('last_status_code', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('delivered_at', 'timestamptz')
      .$call(timestampColumns)
      .addUniqueConstraint('webhook_deliveries_webhook_event_uq', ['webhook_id', 'event_seq'])
      .addCheckConstraint('webhook_deliveries_status_ck', sql`status in ('pending', 'succeeded', 'failed')`),
    // Each endpoint's next delivery in event order, and the list of an endpoint's deliveries.
    schema.createIndex('webhook_deliveries_pending_idx').on('webhook_deliveries').columns(['webhook_id', 'event_seq']).where(sql.ref('status'), '=', 'pending'),
    schema.createIndex('webhook_deliveries_webhook_created_idx').on('webhook_deliveries').columns(['webhook_id', 'created_at']),
  ],
};
