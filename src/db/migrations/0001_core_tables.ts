import { sql } from 'kysely';
import type { CreateTableBuilder, Expression, RawBuilder, SchemaModule, SqlBool } from 'kysely';

import type { MigrationContext, MigrationStatement, TenantMigration } from './migration.js';

/*
 * Naming: `<table>_pkey` (primary keys, PostgreSQL's default), `<table>_<cols>_uq`
 * (unique constraints), `<table>_<cols>_live_uq` (partial unique index among rows with
 * `deleted_at is null`), `<table>_<col>_fk`, `<table>_<what>_ck`, `<table>_<cols>_idx`.
 *
 * The helpers below are exported for 0002. Like every shipped migration this file is
 * immutable, so they are frozen together with the SQL they produce.
 */

type Table<C extends string = never> = CreateTableBuilder<string, C>;

// ---------------------------------------------------------------------------
// Column helpers
// ---------------------------------------------------------------------------

/** `id uuid primary key default gen_random_uuid()` */
export function idColumn<C extends string>(t: Table<C>) {
  return t.addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`));
}

/** `version int not null default 1`: row version used for ETags. */
export function versionColumn<C extends string>(t: Table<C>) {
  return t.addColumn('version', 'integer', (c) => c.notNull().defaultTo(1));
}

/** `created_at` / `updated_at timestamptz not null default now()` */
export function timestampColumns<C extends string>(t: Table<C>) {
  return t
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`));
}

/** `deleted_at timestamptz null` (soft delete). */
export function deletedAtColumn<C extends string>(t: Table<C>) {
  return t.addColumn('deleted_at', 'timestamptz');
}

// ---------------------------------------------------------------------------
// Expression helpers (columns only: raw fragments never name a table)
// ---------------------------------------------------------------------------

/** `<column> in ('a', 'b', ...)` with every value inlined as an escaped literal. */
export function oneOf(column: string, values: readonly (string | number)[]): RawBuilder<SqlBool> {
  return sql<SqlBool>`${sql.ref(column)} in (${sql.join(values.map((v) => sql.lit(v)))})`;
}

/** `<column> ~ '<pattern>'` (the pattern is inlined as an escaped literal). */
export function matches(column: string, pattern: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`${sql.ref(column)} ~ ${sql.lit(pattern)}`;
}

/** `char_length(<column>) between <min> and <max>` */
export function lengthBetween(column: string, min: number, max: number): RawBuilder<SqlBool> {
  return sql<SqlBool>`char_length(${sql.ref(column)}) between ${sql.lit(min)} and ${sql.lit(max)}`;
}

/** `<column> >= <min>` */
export function atLeast(column: string, min: number): RawBuilder<SqlBool> {
  return sql<SqlBool>`${sql.ref(column)} >= ${sql.lit(min)}`;
}

/** `lower(<column>)`, for case-insensitive unique expression indexes. */
export function lower(column: string): Expression<string> {
  return sql<string>`lower(${sql.ref(column)})`;
}

export const LIVE_ROWS: RawBuilder<SqlBool> = sql<SqlBool>`deleted_at is null`;

// ---------------------------------------------------------------------------
// Enumerations and patterns (snapshotted here: changing one needs a new migration)
// ---------------------------------------------------------------------------

const EFFECTS = ['allow', 'deny'] as const;
const USER_STATUSES = ['active', 'invited', 'suspended', 'inactive'] as const;
const TEAM_MEMBER_ROLES = ['member', 'lead'] as const;
const SETTING_TYPES = ['string', 'number', 'boolean', 'json'] as const;
const AUDIT_ACTOR_TYPES = ['user', 'api_key', 'system', 'anonymous'] as const;

const PERMISSION_NAME_PATTERN = String.raw`^(\*|[a-z][a-z_]*\.(\*|[a-z][a-z_]*))$`;
const USERNAME_PATTERN = String.raw`^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$`;
const SETTING_KEY_PATTERN = String.raw`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`;

const NAME_MAX = 200;
const EMAIL_MAX = 254;

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

function roles(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('roles')
      .$call(idColumn)
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('is_system', 'boolean', (c) => c.notNull().defaultTo(false))
      .$call(versionColumn)
      .$call(timestampColumns)
      .$call(deletedAtColumn)
      .addCheckConstraint('roles_name_length_ck', lengthBetween('name', 1, NAME_MAX))
      .addCheckConstraint('roles_priority_ck', sql`priority between 0 and 1000`),
    schema.createIndex('roles_name_live_uq').on('roles').unique().expression(lower('name')).where(LIVE_ROWS),
  ];
}

function permissions(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('permissions')
      .$call(idColumn)
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('resource', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .$call(timestampColumns)
      .addUniqueConstraint('permissions_name_uq', ['name'])
      .addCheckConstraint('permissions_name_format_ck', matches('name', PERMISSION_NAME_PATTERN)),
    schema.createIndex('permissions_resource_idx').on('permissions').column('resource'),
  ];
}

function rolePermissions(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('role_permissions')
      .$call(idColumn)
      .addColumn('role_id', 'uuid', (c) => c.notNull())
      .addColumn('permission_id', 'uuid', (c) => c.notNull())
      .addColumn('effect', 'text', (c) => c.notNull().defaultTo('allow'))
      .$call(timestampColumns)
      .addForeignKeyConstraint('role_permissions_role_id_fk', ['role_id'], 'roles', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addForeignKeyConstraint(
        'role_permissions_permission_id_fk',
        ['permission_id'],
        'permissions',
        ['id'],
        (fk) => fk.onDelete('cascade'),
      )
      .addUniqueConstraint('role_permissions_role_id_permission_id_uq', ['role_id', 'permission_id'])
      .addCheckConstraint('role_permissions_effect_ck', oneOf('effect', EFFECTS)),
    schema.createIndex('role_permissions_permission_id_idx').on('role_permissions').column('permission_id'),
  ];
}

function users(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('users')
      .$call(idColumn)
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('username', 'text')
      .addColumn('password_hash', 'text')
      .addColumn('first_name', 'text')
      .addColumn('last_name', 'text')
      .addColumn('phone', 'text')
      .addColumn('avatar_url', 'text')
      .addColumn('locale', 'text')
      .addColumn('timezone', 'text')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('is_email_verified', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('email_verified_at', 'timestamptz')
      .addColumn('last_login_at', 'timestamptz')
      .addColumn('failed_login_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('locked_until', 'timestamptz')
      .addColumn('lockout_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('password_changed_at', 'timestamptz')
      .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .$call(versionColumn)
      .$call(timestampColumns)
      .$call(deletedAtColumn)
      .addCheckConstraint(
        'users_email_format_ck',
        sql`char_length(email) <= ${sql.lit(EMAIL_MAX)} and position('@' in email) > 1`,
      )
      .addCheckConstraint('users_username_format_ck', matches('username', USERNAME_PATTERN))
      .addCheckConstraint('users_status_ck', oneOf('status', USER_STATUSES))
      .addCheckConstraint('users_failed_login_count_ck', atLeast('failed_login_count', 0))
      .addCheckConstraint('users_lockout_count_ck', atLeast('lockout_count', 0)),
    schema.createIndex('users_email_live_uq').on('users').unique().expression(lower('email')).where(LIVE_ROWS),
    schema
      .createIndex('users_username_live_uq')
      .on('users')
      .unique()
      .expression(lower('username'))
      .where(sql<SqlBool>`deleted_at is null and username is not null`),
    schema.createIndex('users_status_idx').on('users').column('status'),
    schema.createIndex('users_created_at_idx').on('users').column('created_at'),
  ];
}

function userRoles(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('user_roles')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('role_id', 'uuid', (c) => c.notNull())
      .addColumn('assigned_by', 'uuid')
      .$call(timestampColumns)
      .addForeignKeyConstraint('user_roles_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addForeignKeyConstraint('user_roles_role_id_fk', ['role_id'], 'roles', ['id'], (fk) =>
        fk.onDelete('restrict'),
      )
      .addForeignKeyConstraint('user_roles_assigned_by_fk', ['assigned_by'], 'users', ['id'], (fk) =>
        fk.onDelete('set null'),
      )
      .addUniqueConstraint('user_roles_user_id_role_id_uq', ['user_id', 'role_id']),
    schema.createIndex('user_roles_role_id_idx').on('user_roles').column('role_id'),
    schema.createIndex('user_roles_assigned_by_idx').on('user_roles').column('assigned_by'),
  ];
}

function userPermissions(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('user_permissions')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('permission_id', 'uuid', (c) => c.notNull())
      .addColumn('effect', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz')
      .addColumn('granted_by', 'uuid')
      .$call(timestampColumns)
      .addForeignKeyConstraint('user_permissions_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addForeignKeyConstraint(
        'user_permissions_permission_id_fk',
        ['permission_id'],
        'permissions',
        ['id'],
        (fk) => fk.onDelete('cascade'),
      )
      .addForeignKeyConstraint('user_permissions_granted_by_fk', ['granted_by'], 'users', ['id'], (fk) =>
        fk.onDelete('set null'),
      )
      .addUniqueConstraint('user_permissions_user_id_permission_id_uq', ['user_id', 'permission_id'])
      .addCheckConstraint('user_permissions_effect_ck', oneOf('effect', EFFECTS)),
    schema.createIndex('user_permissions_permission_id_idx').on('user_permissions').column('permission_id'),
    schema.createIndex('user_permissions_granted_by_idx').on('user_permissions').column('granted_by'),
  ];
}

function teams(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('teams')
      .$call(idColumn)
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('parent_team_id', 'uuid')
      .$call(versionColumn)
      .$call(timestampColumns)
      .$call(deletedAtColumn)
      .addForeignKeyConstraint('teams_parent_team_id_fk', ['parent_team_id'], 'teams', ['id'], (fk) =>
        fk.onDelete('set null'),
      )
      .addCheckConstraint('teams_name_length_ck', lengthBetween('name', 1, NAME_MAX))
      .addCheckConstraint('teams_parent_not_self_ck', sql`parent_team_id <> id`),
    schema.createIndex('teams_name_live_uq').on('teams').unique().expression(lower('name')).where(LIVE_ROWS),
    schema.createIndex('teams_parent_team_id_idx').on('teams').column('parent_team_id'),
  ];
}

function teamMembers(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('team_members')
      .$call(idColumn)
      .addColumn('team_id', 'uuid', (c) => c.notNull())
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull().defaultTo('member'))
      .$call(timestampColumns)
      .addForeignKeyConstraint('team_members_team_id_fk', ['team_id'], 'teams', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addForeignKeyConstraint('team_members_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addUniqueConstraint('team_members_team_id_user_id_uq', ['team_id', 'user_id'])
      .addCheckConstraint('team_members_role_ck', oneOf('role', TEAM_MEMBER_ROLES)),
    schema.createIndex('team_members_user_id_idx').on('team_members').column('user_id'),
  ];
}

function userSessions(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('user_sessions')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('refresh_token_hash', 'text', (c) => c.notNull())
      .addColumn('previous_refresh_token_hash', 'text')
      .addColumn('ip_address', sql`inet`)
      .addColumn('user_agent', 'text')
      .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('revoked_at', 'timestamptz')
      .addColumn('revoked_reason', 'text')
      .$call(timestampColumns)
      .addForeignKeyConstraint('user_sessions_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addUniqueConstraint('user_sessions_refresh_token_hash_uq', ['refresh_token_hash']),
    schema
      .createIndex('user_sessions_previous_refresh_token_hash_idx')
      .on('user_sessions')
      .column('previous_refresh_token_hash'),
    schema.createIndex('user_sessions_user_id_idx').on('user_sessions').column('user_id'),
    schema.createIndex('user_sessions_expires_at_idx').on('user_sessions').column('expires_at'),
  ];
}

function settings(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('settings')
      .$call(idColumn)
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('value', 'jsonb', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('category', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('is_public', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('validation', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn('updated_by', 'uuid')
      .$call(versionColumn)
      .$call(timestampColumns)
      .addForeignKeyConstraint('settings_updated_by_fk', ['updated_by'], 'users', ['id'], (fk) =>
        fk.onDelete('set null'),
      )
      .addUniqueConstraint('settings_key_uq', ['key'])
      .addCheckConstraint('settings_key_format_ck', matches('key', SETTING_KEY_PATTERN))
      .addCheckConstraint('settings_type_ck', oneOf('type', SETTING_TYPES))
      .addCheckConstraint(
        'settings_value_type_ck',
        sql`(type = 'string' and jsonb_typeof(value) = 'string')
          or (type = 'number' and jsonb_typeof(value) = 'number')
          or (type = 'boolean' and jsonb_typeof(value) = 'boolean')
          or type = 'json'`,
      )
      // A JSON `null` would read back as SQL NULL in the application; use a nullable column instead.
      .addCheckConstraint('settings_value_not_json_null_ck', sql`jsonb_typeof(value) <> 'null'`),
    schema.createIndex('settings_category_idx').on('settings').column('category'),
    schema.createIndex('settings_updated_by_idx').on('settings').column('updated_by'),
  ];
}

function auditLogs(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('audit_logs')
      .$call(idColumn)
      // No foreign key: the audit trail outlives the users it mentions.
      .addColumn('actor_user_id', 'uuid')
      .addColumn('actor_type', 'text', (c) => c.notNull())
      .addColumn('session_id', 'uuid')
      .addColumn('ip_address', sql`inet`)
      .addColumn('user_agent', 'text')
      .addColumn('request_id', 'text')
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('entity_type', 'text')
      .addColumn('entity_id', 'text')
      .addColumn('before', 'jsonb')
      .addColumn('after', 'jsonb')
      .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .$call(timestampColumns)
      .addCheckConstraint('audit_logs_actor_type_ck', oneOf('actor_type', AUDIT_ACTOR_TYPES)),
    schema.createIndex('audit_logs_created_at_idx').on('audit_logs').column('created_at desc'),
    schema.createIndex('audit_logs_actor_user_id_idx').on('audit_logs').column('actor_user_id'),
    schema.createIndex('audit_logs_entity_idx').on('audit_logs').columns(['entity_type', 'entity_id']),
    schema.createIndex('audit_logs_action_idx').on('audit_logs').column('action'),
    schema.createIndex('audit_logs_session_id_idx').on('audit_logs').column('session_id'),
  ];
}

/** audit_logs rows can be inserted only: updates, deletes and truncates raise. */
function auditLogsImmutability(schemaName: string): MigrationStatement[] {
  const fn = sql.id(schemaName, 'audit_logs_immutable');
  const table = sql.id(schemaName, 'audit_logs');
  return [
    sql`create function ${fn}() returns trigger language plpgsql as $body$
begin
  raise exception 'audit_logs rows are immutable' using errcode = 'restrict_violation';
end
$body$`,
    sql`create trigger audit_logs_no_update_delete before update or delete on ${table}
for each row execute function ${fn}()`,
    sql`create trigger audit_logs_no_truncate before truncate on ${table}
for each statement execute function ${fn}()`,
  ];
}

function passwordResetTokens(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('password_reset_tokens')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .addColumn('requested_ip', sql`inet`)
      .$call(timestampColumns)
      .addForeignKeyConstraint('password_reset_tokens_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addUniqueConstraint('password_reset_tokens_token_hash_uq', ['token_hash']),
    schema.createIndex('password_reset_tokens_user_id_idx').on('password_reset_tokens').column('user_id'),
    schema.createIndex('password_reset_tokens_expires_at_idx').on('password_reset_tokens').column('expires_at'),
  ];
}

function emailVerificationTokens(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('email_verification_tokens')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .$call(timestampColumns)
      .addForeignKeyConstraint('email_verification_tokens_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addUniqueConstraint('email_verification_tokens_token_hash_uq', ['token_hash'])
      .addCheckConstraint(
        'email_verification_tokens_email_format_ck',
        sql`char_length(email) <= ${sql.lit(EMAIL_MAX)} and position('@' in email) > 1`,
      ),
    schema
      .createIndex('email_verification_tokens_user_id_idx')
      .on('email_verification_tokens')
      .column('user_id'),
    schema
      .createIndex('email_verification_tokens_expires_at_idx')
      .on('email_verification_tokens')
      .column('expires_at'),
  ];
}

function apiKeys(schema: SchemaModule): MigrationStatement[] {
  return [
    schema
      .createTable('api_keys')
      .$call(idColumn)
      .addColumn('user_id', 'uuid', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull())
      .addColumn('permissions', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
      .addColumn('expires_at', 'timestamptz')
      .addColumn('last_used_at', 'timestamptz')
      .$call(versionColumn)
      .$call(timestampColumns)
      .$call(deletedAtColumn)
      .addForeignKeyConstraint('api_keys_user_id_fk', ['user_id'], 'users', ['id'], (fk) =>
        fk.onDelete('cascade'),
      )
      .addUniqueConstraint('api_keys_key_hash_uq', ['key_hash'])
      .addCheckConstraint('api_keys_name_length_ck', lengthBetween('name', 1, NAME_MAX)),
    schema.createIndex('api_keys_prefix_live_uq').on('api_keys').unique().column('prefix').where(LIVE_ROWS),
    schema.createIndex('api_keys_user_id_idx').on('api_keys').column('user_id'),
  ];
}

export const coreTables: TenantMigration = {
  version: 1,
  name: 'core_tables',
  statements(ctx: MigrationContext): MigrationStatement[] {
    const { schema } = ctx;
    return [
      ...roles(schema),
      ...permissions(schema),
      ...rolePermissions(schema),
      ...users(schema),
      ...userRoles(schema),
      ...userPermissions(schema),
      ...teams(schema),
      ...teamMembers(schema),
      ...userSessions(schema),
      ...settings(schema),
      ...auditLogs(schema),
      ...auditLogsImmutability(ctx.schemaName),
      ...passwordResetTokens(schema),
      ...emailVerificationTokens(schema),
      ...apiKeys(schema),
    ];
  },
};
