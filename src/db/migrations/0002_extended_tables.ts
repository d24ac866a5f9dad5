import { sql } from 'kysely';
import type { CreateTableBuilder, SchemaModule, SqlBool } from 'kysely';

import {
  atLeast,
  deletedAtColumn,
  idColumn,
  lengthBetween,
  LIVE_ROWS,
  lower,
  matches,
  oneOf,
  timestampColumns,
  versionColumn,
} from './0001_core_tables.js';
import type { MigrationStatement, TenantMigration } from './migration.js';

/*
 * Every extended table has: id, its own columns, created_by (fk users, set null),
 * version, created_at, updated_at, deleted_at; most also a polymorphic
 * `<x>able_type` / `<x>able_id` pair pointing at any row of an allowed table.
 */

/** The polymorphic allowlist as this migration checks it (frozen: a change needs a new migration). */
export const POLYMORPHIC_TYPES_0002 = [
  'users',
  'teams',
  'notes',
  'logacalls',
  'tasks',
  'attachments',
  'events',
  'carbon_footprints',
  'channel_configs',
  'reviews',
] as const;

const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
const CALL_DIRECTIONS = ['inbound', 'outbound'] as const;
const CALL_OUTCOMES = ['answered', 'no_answer', 'busy', 'voicemail', 'failed', 'cancelled'] as const;
const TASK_STATUSES = ['todo', 'in_progress', 'done', 'cancelled'] as const;
const CHANNELS = ['email', 'sms', 'whatsapp', 'slack', 'webhook', 'teams', 'telegram', 'push'] as const;
const REVIEW_STATUSES = ['pending', 'approved', 'rejected'] as const;

const E164_PATTERN = String.raw`^\+[1-9][0-9]{1,14}$`;
const SHA256_HEX_PATTERN = '^[0-9a-f]{64}$';

const NAME_MAX = 200;
const TITLE_MAX = 500;
const FILE_NAME_MAX = 255;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/** Adds `<prefix>_type text null` and `<prefix>_id uuid null`. */
function polymorphicColumns<TB extends string, C extends string, P extends string>(prefix: P) {
  return (t: CreateTableBuilder<TB, C>) =>
    t.addColumn(`${prefix}_type`, 'text').addColumn(`${prefix}_id`, 'uuid');
}

/** Adds created_by, version, created_at, updated_at, deleted_at (in that order). */
function trailingColumns<TB extends string, C extends string>(t: CreateTableBuilder<TB, C>) {
  return t
    .addColumn('created_by', 'uuid')
    .$call(versionColumn)
    .$call(timestampColumns)
    .$call(deletedAtColumn);
}

/** `<table>_created_by_fk` (on delete set null). */
function createdByForeignKey(table: string) {
  return <TB extends string, C extends string>(t: CreateTableBuilder<TB, C | 'created_by'>) =>
    t.addForeignKeyConstraint(`${table}_created_by_fk`, ['created_by'], 'users', ['id'], (fk) =>
      fk.onDelete('set null'),
    );
}

/** Both-or-neither and allowlist checks for a polymorphic pair. */
function polymorphicChecks(table: string, prefix: string) {
  const type = `${prefix}_type`;
  const id = `${prefix}_id`;
  return <TB extends string, C extends string>(t: CreateTableBuilder<TB, C>) =>
    t
      .addCheckConstraint(
        `${table}_${prefix}_pair_ck`,
        sql<SqlBool>`(${sql.ref(type)} is null) = (${sql.ref(id)} is null)`,
      )
      .addCheckConstraint(`${table}_${prefix}_type_ck`, oneOf(type, POLYMORPHIC_TYPES_0002));
}

function createdByIndex(schema: SchemaModule, table: string): MigrationStatement {
  return schema.createIndex(`${table}_created_by_idx`).on(table).column('created_by');
}

function polymorphicIndex(schema: SchemaModule, table: string, prefix: string): MigrationStatement {
  return schema
    .createIndex(`${table}_${prefix}_idx`)
    .on(table)
    .columns([`${prefix}_type`, `${prefix}_id`]);
}

function index(schema: SchemaModule, table: string, column: string): MigrationStatement {
  return schema.createIndex(`${table}_${column}_idx`).on(table).column(column);
}

function userForeignKey(table: string, column: string) {
  return <TB extends string, C extends string>(t: CreateTableBuilder<TB, C>) =>
    t.addForeignKeyConstraint(`${table}_${column}_fk`, [column as C], 'users', ['id'], (fk) =>
      fk.onDelete('set null'),
    );
}

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

function notes(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('notes')
      .$call(idColumn)
      .$call(polymorphicColumns('notable'))
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('content', 'text', (c) => c.notNull())
      .addColumn('priority', 'text', (c) => c.notNull().defaultTo('normal'))
      .addColumn('is_pinned', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('assigned_to', 'uuid')
      .$call(trailingColumns)
      .$call(createdByForeignKey('notes'))
      .$call(userForeignKey('notes', 'assigned_to'))
      .$call(polymorphicChecks('notes', 'notable'))
      .addCheckConstraint('notes_title_length_ck', lengthBetween('title', 1, TITLE_MAX))
      .addCheckConstraint('notes_priority_ck', oneOf('priority', PRIORITIES)),
    createdByIndex(schema, 'notes'),
    polymorphicIndex(schema, 'notes', 'notable'),
    index(schema, 'notes', 'assigned_to'),
    index(schema, 'notes', 'priority'),
  ];
}

function logacalls(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('logacalls')
      .$call(idColumn)
      .$call(polymorphicColumns('logacallable'))
      .addColumn('direction', 'text', (c) => c.notNull())
      .addColumn('phone_number', 'text', (c) => c.notNull())
      .addColumn('called_at', 'timestamptz', (c) => c.notNull())
      .addColumn('duration_seconds', 'integer')
      .addColumn('outcome', 'text')
      .addColumn('notes', 'text')
      .$call(trailingColumns)
      .$call(createdByForeignKey('logacalls'))
      .$call(polymorphicChecks('logacalls', 'logacallable'))
      .addCheckConstraint('logacalls_direction_ck', oneOf('direction', CALL_DIRECTIONS))
      .addCheckConstraint('logacalls_phone_number_format_ck', matches('phone_number', E164_PATTERN))
      .addCheckConstraint('logacalls_duration_seconds_ck', atLeast('duration_seconds', 0))
      .addCheckConstraint('logacalls_outcome_ck', oneOf('outcome', CALL_OUTCOMES)),
    createdByIndex(schema, 'logacalls'),
    polymorphicIndex(schema, 'logacalls', 'logacallable'),
    index(schema, 'logacalls', 'called_at'),
    index(schema, 'logacalls', 'direction'),
  ];
}

function tasks(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('tasks')
      .$call(idColumn)
      .$call(polymorphicColumns('taskable'))
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('todo'))
      .addColumn('priority', 'text', (c) => c.notNull().defaultTo('normal'))
      .addColumn('due_at', 'timestamptz')
      .addColumn('completed_at', 'timestamptz')
      .addColumn('assigned_to', 'uuid')
      .$call(trailingColumns)
      .$call(createdByForeignKey('tasks'))
      .$call(userForeignKey('tasks', 'assigned_to'))
      .$call(polymorphicChecks('tasks', 'taskable'))
      .addCheckConstraint('tasks_title_length_ck', lengthBetween('title', 1, TITLE_MAX))
      .addCheckConstraint('tasks_status_ck', oneOf('status', TASK_STATUSES))
      .addCheckConstraint('tasks_priority_ck', oneOf('priority', PRIORITIES))
      .addCheckConstraint('tasks_completed_at_ck', sql`(status = 'done') = (completed_at is not null)`),
    createdByIndex(schema, 'tasks'),
    polymorphicIndex(schema, 'tasks', 'taskable'),
    index(schema, 'tasks', 'status'),
    index(schema, 'tasks', 'due_at'),
    index(schema, 'tasks', 'assigned_to'),
  ];
}

function attachments(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('attachments')
      .$call(idColumn)
      .$call(polymorphicColumns('attachable'))
      .addColumn('file_name', 'text', (c) => c.notNull())
      .addColumn('content_type', 'text', (c) => c.notNull())
      .addColumn('size_bytes', 'bigint', (c) => c.notNull())
      .addColumn('checksum_sha256', 'text', (c) => c.notNull())
      .addColumn('storage_key', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('parent_id', 'uuid')
      .addColumn('purged_at', 'timestamptz')
      .$call(trailingColumns)
      .$call(createdByForeignKey('attachments'))
      .addForeignKeyConstraint('attachments_parent_id_fk', ['parent_id'], 'attachments', ['id'], (fk) =>
        fk.onDelete('set null'),
      )
      .$call(polymorphicChecks('attachments', 'attachable'))
      .addCheckConstraint('attachments_file_name_length_ck', lengthBetween('file_name', 1, FILE_NAME_MAX))
      .addCheckConstraint('attachments_size_bytes_ck', atLeast('size_bytes', 0))
      .addCheckConstraint('attachments_checksum_sha256_format_ck', matches('checksum_sha256', SHA256_HEX_PATTERN))
      .addCheckConstraint('attachments_revision_ck', atLeast('revision', 1)),
    createdByIndex(schema, 'attachments'),
    polymorphicIndex(schema, 'attachments', 'attachable'),
    index(schema, 'attachments', 'parent_id'),
    index(schema, 'attachments', 'checksum_sha256'),
  ];
}

function events(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('events')
      .$call(idColumn)
      .$call(polymorphicColumns('eventable'))
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('location', 'text')
      .addColumn('starts_at', 'timestamptz', (c) => c.notNull())
      .addColumn('ends_at', 'timestamptz', (c) => c.notNull())
      .addColumn('all_day', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('timezone', 'text')
      .addColumn('rrule', 'text')
      .addColumn('attendees', sql`uuid[]`, (c) => c.notNull().defaultTo(sql`'{}'::uuid[]`))
      .$call(trailingColumns)
      .$call(createdByForeignKey('events'))
      .$call(polymorphicChecks('events', 'eventable'))
      .addCheckConstraint('events_title_length_ck', lengthBetween('title', 1, TITLE_MAX))
      .addCheckConstraint('events_time_range_ck', sql`starts_at < ends_at`),
    createdByIndex(schema, 'events'),
    polymorphicIndex(schema, 'events', 'eventable'),
    index(schema, 'events', 'starts_at'),
    index(schema, 'events', 'ends_at'),
    schema.createIndex('events_attendees_gin_idx').on('events').using('gin').column('attendees'),
  ];
}

function carbonFootprints(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('carbon_footprints')
      .$call(idColumn)
      .addColumn('scope', 'int2')
      .addColumn('category', 'text')
      .addColumn('activity', 'text', (c) => c.notNull())
      .addColumn('quantity', 'numeric(20, 6)', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      .addColumn('emission_factor', 'numeric(20, 6)')
      .addColumn('co2e_kg', 'numeric(20, 6)', (c) => c.notNull())
      .addColumn('period_start', 'date', (c) => c.notNull())
      .addColumn('period_end', 'date', (c) => c.notNull())
      .addColumn('source', 'text')
      .addColumn('notes', 'text')
      .$call(trailingColumns)
      .$call(createdByForeignKey('carbon_footprints'))
      .addCheckConstraint('carbon_footprints_scope_ck', oneOf('scope', [1, 2, 3]))
      .addCheckConstraint('carbon_footprints_quantity_ck', atLeast('quantity', 0))
      .addCheckConstraint('carbon_footprints_emission_factor_ck', atLeast('emission_factor', 0))
      .addCheckConstraint('carbon_footprints_co2e_kg_ck', atLeast('co2e_kg', 0))
      .addCheckConstraint('carbon_footprints_period_ck', sql`period_start <= period_end`),
    createdByIndex(schema, 'carbon_footprints'),
    index(schema, 'carbon_footprints', 'scope'),
    index(schema, 'carbon_footprints', 'category'),
    index(schema, 'carbon_footprints', 'period_start'),
  ];
}

function channelConfigs(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('channel_configs')
      .$call(idColumn)
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('config', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn('encrypted_secrets', 'text')
      .addColumn('is_enabled', 'boolean', (c) => c.notNull().defaultTo(true))
      .addColumn('is_default', 'boolean', (c) => c.notNull().defaultTo(false))
      .$call(trailingColumns)
      .$call(createdByForeignKey('channel_configs'))
      .addCheckConstraint('channel_configs_channel_ck', oneOf('channel', CHANNELS))
      .addCheckConstraint('channel_configs_name_length_ck', lengthBetween('name', 1, NAME_MAX)),
    createdByIndex(schema, 'channel_configs'),
    schema
      .createIndex('channel_configs_channel_name_live_uq')
      .on('channel_configs')
      .unique()
      .column('channel')
      .expression(lower('name'))
      .where(LIVE_ROWS),
    index(schema, 'channel_configs', 'channel'),
  ];
}

function reviews(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('reviews')
      .$call(idColumn)
      .$call(polymorphicColumns('reviewable'))
      .addColumn('rating', 'int2', (c) => c.notNull())
      .addColumn('title', 'text')
      .addColumn('body', 'text')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
      .addColumn('moderated_by', 'uuid')
      .addColumn('moderated_at', 'timestamptz')
      .$call(trailingColumns)
      .$call(createdByForeignKey('reviews'))
      .$call(userForeignKey('reviews', 'moderated_by'))
      .$call(polymorphicChecks('reviews', 'reviewable'))
      .addCheckConstraint('reviews_rating_ck', sql`rating between 1 and 5`)
      .addCheckConstraint('reviews_title_length_ck', lengthBetween('title', 1, TITLE_MAX))
      .addCheckConstraint('reviews_status_ck', oneOf('status', REVIEW_STATUSES)),
    createdByIndex(schema, 'reviews'),
    polymorphicIndex(schema, 'reviews', 'reviewable'),
    index(schema, 'reviews', 'status'),
    index(schema, 'reviews', 'rating'),
    index(schema, 'reviews', 'moderated_by'),
  ];
}

export const extendedTables: TenantMigration = {
  version: 2,
  name: 'extended_tables',
  statements({ schema }): MigrationStatement[] {
    return [
      ...notes(schema),
      ...logacalls(schema),
      ...tasks(schema),
      ...attachments(schema),
      ...events(schema),
      ...carbonFootprints(schema),
      ...channelConfigs(schema),
      ...reviews(schema),
    ];
  },
};
