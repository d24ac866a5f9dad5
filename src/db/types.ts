import type { ColumnType, Generated, Selectable } from 'kysely';

/*
 * Kysely table interfaces for one tenant schema, plus a runtime description of the
 * same columns (`tenantColumns`) that tests compare with information_schema.
 * The two are tied together at compile time (see the checks at the end of the file).
 *
 * Type mapping (what `pg` returns):
 *   uuid, text, inet -> string        int2, int4 -> number       bool -> boolean
 *   int8, numeric    -> string        date -> string (YYYY-MM-DD, pg configured so)
 *   timestamptz      -> Date          jsonb -> JsonValue         uuid[], text[] -> string[]
 * Columns with a database default use Generated<> / Generated* aliases (optional on insert).
 */

// ---------------------------------------------------------------------------
// Column type aliases
// ---------------------------------------------------------------------------

/** timestamptz without a default: required on insert. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** timestamptz with a default (`now()`): optional on insert. */
export type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** date: read as a 'YYYY-MM-DD' string. */
export type DateString = ColumnType<string, string, string>;

/** int8: read as a string (it may exceed Number.MAX_SAFE_INTEGER). */
export type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>;

/** numeric: read as a string (exact decimal). */
export type Numeric = ColumnType<string, string | number, string | number>;

export type JsonPrimitive = string | number | boolean;
export type JsonArray = (JsonValue | null)[];
export interface JsonObject {
  [key: string]: JsonValue | null;
}
/**
 * A JSON document as read from a NOT NULL jsonb column. A top-level JSON `null` is
 * excluded: it would be indistinguishable from SQL NULL once parsed.
 */
export type JsonValue = JsonPrimitive | JsonArray | JsonObject;

/**
 * jsonb: written as a JSON string (`JSON.stringify(value)`), as Kysely's JSONColumnType
 * does. (node-postgres would turn a JS array into a PostgreSQL array literal and send a
 * JS string unquoted, so passing raw values is unsafe.)
 */
export type Json = ColumnType<JsonValue, string, string>;
/** jsonb with a default (`'{}'`): optional on insert. */
export type GeneratedJson = ColumnType<JsonValue, string | undefined, string>;

// ---------------------------------------------------------------------------
// Core tables (migration 0001)
// ---------------------------------------------------------------------------

export interface RolesTable {
  id: Generated<string>;
  name: string;
  description: string | null;
  priority: Generated<number>;
  is_system: Generated<boolean>;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  deleted_at: Timestamp | null;
}

export interface PermissionsTable {
  id: Generated<string>;
  name: string;
  resource: string;
  action: string;
  description: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface RolePermissionsTable {
  id: Generated<string>;
  role_id: string;
  permission_id: string;
  effect: Generated<string>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface UsersTable {
  id: Generated<string>;
  email: string;
  username: string | null;
  password_hash: string | null;
  first_name: string | null;
  last_name: string | null;
  phone: string | null;
  avatar_url: string | null;
  locale: string | null;
  timezone: string | null;
  status: Generated<string>;
  is_email_verified: Generated<boolean>;
  email_verified_at: Timestamp | null;
  last_login_at: Timestamp | null;
  failed_login_count: Generated<number>;
  locked_until: Timestamp | null;
  lockout_count: Generated<number>;
  password_changed_at: Timestamp | null;
  metadata: GeneratedJson;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  deleted_at: Timestamp | null;
}

export interface UserRolesTable {
  id: Generated<string>;
  user_id: string;
  role_id: string;
  assigned_by: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface UserPermissionsTable {
  id: Generated<string>;
  user_id: string;
  permission_id: string;
  effect: string;
  expires_at: Timestamp | null;
  granted_by: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface TeamsTable {
  id: Generated<string>;
  name: string;
  description: string | null;
  parent_team_id: string | null;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  deleted_at: Timestamp | null;
}

export interface TeamMembersTable {
  id: Generated<string>;
  team_id: string;
  user_id: string;
  role: Generated<string>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface UserSessionsTable {
  id: Generated<string>;
  user_id: string;
  refresh_token_hash: string;
  previous_refresh_token_hash: string | null;
  ip_address: string | null;
  user_agent: string | null;
  last_seen_at: GeneratedTimestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  revoked_reason: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface SettingsTable {
  id: Generated<string>;
  key: string;
  value: Json;
  type: string;
  category: string;
  description: string | null;
  is_public: Generated<boolean>;
  validation: GeneratedJson;
  updated_by: string | null;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface AuditLogsTable {
  id: Generated<string>;
  actor_user_id: string | null;
  actor_type: string;
  session_id: string | null;
  ip_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  action: string;
  entity_type: string | null;
  entity_id: string | null;
  before: Json | null;
  after: Json | null;
  metadata: GeneratedJson;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface PasswordResetTokensTable {
  id: Generated<string>;
  user_id: string;
  token_hash: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  requested_ip: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface EmailVerificationTokensTable {
  id: Generated<string>;
  user_id: string;
  email: string;
  token_hash: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface ApiKeysTable {
  id: Generated<string>;
  user_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  permissions: Generated<string[]>;
  expires_at: Timestamp | null;
  last_used_at: Timestamp | null;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  deleted_at: Timestamp | null;
}

/** Migration 0003. */
export interface IdempotencyKeysTable {
  id: Generated<string>;
  scope: string;
  key: string;
  method: string;
  path: string;
  request_hash: string;
  status_code: number;
  response: Json | null;
  expires_at: Timestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------
// Extended tables (migration 0002)
// ---------------------------------------------------------------------------

/** Columns every extended table ends with. */
interface ExtendedTrailingColumns {
  created_by: string | null;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  deleted_at: Timestamp | null;
}

export interface NotesTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  notable_type: string | null;
  notable_id: string | null;
  title: string;
  content: string;
  priority: Generated<string>;
  is_pinned: Generated<boolean>;
  assigned_to: string | null;
}

export interface LogacallsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  logacallable_type: string | null;
  logacallable_id: string | null;
  direction: string;
  phone_number: string;
  called_at: Timestamp;
  duration_seconds: number | null;
  outcome: string | null;
  notes: string | null;
}

export interface TasksTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  taskable_type: string | null;
  taskable_id: string | null;
  title: string;
  description: string | null;
  status: Generated<string>;
  priority: Generated<string>;
  due_at: Timestamp | null;
  completed_at: Timestamp | null;
  assigned_to: string | null;
}

export interface AttachmentsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  attachable_type: string | null;
  attachable_id: string | null;
  file_name: string;
  content_type: string;
  size_bytes: Int8;
  checksum_sha256: string;
  storage_key: string;
  revision: Generated<number>;
  parent_id: string | null;
  purged_at: Timestamp | null;
}

export interface EventsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  eventable_type: string | null;
  eventable_id: string | null;
  title: string;
  description: string | null;
  location: string | null;
  starts_at: Timestamp;
  ends_at: Timestamp;
  all_day: Generated<boolean>;
  timezone: string | null;
  rrule: string | null;
  attendees: Generated<string[]>;
}

export interface CarbonFootprintsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  scope: number | null;
  category: string | null;
  activity: string;
  quantity: Numeric;
  unit: string;
  emission_factor: Numeric | null;
  co2e_kg: Numeric;
  period_start: DateString;
  period_end: DateString;
  source: string | null;
  notes: string | null;
}

export interface ChannelConfigsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  channel: string;
  name: string;
  config: GeneratedJson;
  encrypted_secrets: string | null;
  is_enabled: Generated<boolean>;
  is_default: Generated<boolean>;
}

export interface ReviewsTable extends ExtendedTrailingColumns {
  id: Generated<string>;
  reviewable_type: string | null;
  reviewable_id: string | null;
  rating: number;
  title: string | null;
  body: string | null;
  status: Generated<string>;
  moderated_by: string | null;
  moderated_at: Timestamp | null;
}

// ---------------------------------------------------------------------------
// activity_log (created from a SQL file, not by a TenantMigration)
// ---------------------------------------------------------------------------

/** Mirrors src/db/sql/tenant_template.sql (id, details and timestamps have defaults). */
export interface ActivityLogTable {
  id: Generated<string>;
  user_id: string | null;
  action: string;
  details: GeneratedJson;
  ip_address: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

export interface TenantDatabase {
  roles: RolesTable;
  permissions: PermissionsTable;
  role_permissions: RolePermissionsTable;
  users: UsersTable;
  user_roles: UserRolesTable;
  user_permissions: UserPermissionsTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  user_sessions: UserSessionsTable;
  settings: SettingsTable;
  audit_logs: AuditLogsTable;
  password_reset_tokens: PasswordResetTokensTable;
  email_verification_tokens: EmailVerificationTokensTable;
  api_keys: ApiKeysTable;
  idempotency_keys: IdempotencyKeysTable;
  notes: NotesTable;
  logacalls: LogacallsTable;
  tasks: TasksTable;
  attachments: AttachmentsTable;
  events: EventsTable;
  carbon_footprints: CarbonFootprintsTable;
  channel_configs: ChannelConfigsTable;
  reviews: ReviewsTable;
  activity_log: ActivityLogTable;
}

export type TableName = keyof TenantDatabase;

// ---------------------------------------------------------------------------
// Runtime column description (information_schema.columns.udt_name / is_nullable)
// ---------------------------------------------------------------------------

/** What each udt_name reads as in TypeScript (select type, without null). */
interface UdtSelectTypes {
  uuid: string;
  text: string;
  inet: string;
  int2: number;
  int4: number;
  int8: string;
  numeric: string;
  bool: boolean;
  timestamptz: Date;
  date: string;
  jsonb: JsonValue;
  bytea: Buffer;
  _uuid: string[];
  _text: string[];
}

export type UdtName = keyof UdtSelectTypes;

export interface ColumnSpec<U extends UdtName = UdtName, N extends boolean = boolean> {
  /** information_schema.columns.udt_name */
  readonly udtName: U;
  /** information_schema.columns.is_nullable = 'YES' */
  readonly nullable: N;
}

function col<const U extends UdtName, const N extends boolean>(udtName: U, nullable: N): ColumnSpec<U, N> {
  return { udtName, nullable };
}

const creation = {
  created_at: col('timestamptz', false),
  updated_at: col('timestamptz', false),
} as const;

const extendedTrailing = {
  created_by: col('uuid', true),
  version: col('int4', false),
  ...creation,
  deleted_at: col('timestamptz', true),
} as const;

export const tenantColumns = {
  roles: {
    id: col('uuid', false),
    name: col('text', false),
    description: col('text', true),
    priority: col('int4', false),
    is_system: col('bool', false),
    version: col('int4', false),
    ...creation,
    deleted_at: col('timestamptz', true),
  },
  permissions: {
    id: col('uuid', false),
    name: col('text', false),
    resource: col('text', false),
    action: col('text', false),
    description: col('text', true),
    ...creation,
  },
  role_permissions: {
    id: col('uuid', false),
    role_id: col('uuid', false),
    permission_id: col('uuid', false),
    effect: col('text', false),
    ...creation,
  },
  users: {
    id: col('uuid', false),
    email: col('text', false),
    username: col('text', true),
    password_hash: col('text', true),
    first_name: col('text', true),
    last_name: col('text', true),
    phone: col('text', true),
    avatar_url: col('text', true),
    locale: col('text', true),
    timezone: col('text', true),
    status: col('text', false),
    is_email_verified: col('bool', false),
    email_verified_at: col('timestamptz', true),
    last_login_at: col('timestamptz', true),
    failed_login_count: col('int4', false),
    locked_until: col('timestamptz', true),
    lockout_count: col('int4', false),
    password_changed_at: col('timestamptz', true),
    metadata: col('jsonb', false),
    version: col('int4', false),
    ...creation,
    deleted_at: col('timestamptz', true),
  },
  user_roles: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    role_id: col('uuid', false),
    assigned_by: col('uuid', true),
    ...creation,
  },
  user_permissions: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    permission_id: col('uuid', false),
    effect: col('text', false),
    expires_at: col('timestamptz', true),
    granted_by: col('uuid', true),
    ...creation,
  },
  teams: {
    id: col('uuid', false),
    name: col('text', false),
    description: col('text', true),
    parent_team_id: col('uuid', true),
    version: col('int4', false),
    ...creation,
    deleted_at: col('timestamptz', true),
  },
  team_members: {
    id: col('uuid', false),
    team_id: col('uuid', false),
    user_id: col('uuid', false),
    role: col('text', false),
    ...creation,
  },
  user_sessions: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    refresh_token_hash: col('text', false),
    previous_refresh_token_hash: col('text', true),
    ip_address: col('inet', true),
    user_agent: col('text', true),
    last_seen_at: col('timestamptz', false),
    expires_at: col('timestamptz', false),
    revoked_at: col('timestamptz', true),
    revoked_reason: col('text', true),
    ...creation,
  },
  settings: {
    id: col('uuid', false),
    key: col('text', false),
    value: col('jsonb', false),
    type: col('text', false),
    category: col('text', false),
    description: col('text', true),
    is_public: col('bool', false),
    validation: col('jsonb', false),
    updated_by: col('uuid', true),
    version: col('int4', false),
    ...creation,
  },
  audit_logs: {
    id: col('uuid', false),
    actor_user_id: col('uuid', true),
    actor_type: col('text', false),
    session_id: col('uuid', true),
    ip_address: col('inet', true),
    user_agent: col('text', true),
    request_id: col('text', true),
    action: col('text', false),
    entity_type: col('text', true),
    entity_id: col('text', true),
    before: col('jsonb', true),
    after: col('jsonb', true),
    metadata: col('jsonb', false),
    ...creation,
  },
  password_reset_tokens: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    token_hash: col('text', false),
    expires_at: col('timestamptz', false),
    used_at: col('timestamptz', true),
    requested_ip: col('inet', true),
    ...creation,
  },
  email_verification_tokens: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    email: col('text', false),
    token_hash: col('text', false),
    expires_at: col('timestamptz', false),
    used_at: col('timestamptz', true),
    ...creation,
  },
  idempotency_keys: {
    id: col('uuid', false),
    scope: col('text', false),
    key: col('text', false),
    method: col('text', false),
    path: col('text', false),
    request_hash: col('text', false),
    status_code: col('int4', false),
    response: col('jsonb', true),
    expires_at: col('timestamptz', false),
    ...creation,
  },
  api_keys: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    name: col('text', false),
    prefix: col('text', false),
    key_hash: col('text', false),
    permissions: col('_text', false),
    expires_at: col('timestamptz', true),
    last_used_at: col('timestamptz', true),
    version: col('int4', false),
    ...creation,
    deleted_at: col('timestamptz', true),
  },
  notes: {
    id: col('uuid', false),
    notable_type: col('text', true),
    notable_id: col('uuid', true),
    title: col('text', false),
    content: col('text', false),
    priority: col('text', false),
    is_pinned: col('bool', false),
    assigned_to: col('uuid', true),
    ...extendedTrailing,
  },
  logacalls: {
    id: col('uuid', false),
    logacallable_type: col('text', true),
    logacallable_id: col('uuid', true),
    direction: col('text', false),
    phone_number: col('text', false),
    called_at: col('timestamptz', false),
    duration_seconds: col('int4', true),
    outcome: col('text', true),
    notes: col('text', true),
    ...extendedTrailing,
  },
  tasks: {
    id: col('uuid', false),
    taskable_type: col('text', true),
    taskable_id: col('uuid', true),
    title: col('text', false),
    description: col('text', true),
    status: col('text', false),
    priority: col('text', false),
    due_at: col('timestamptz', true),
    completed_at: col('timestamptz', true),
    assigned_to: col('uuid', true),
    ...extendedTrailing,
  },
  attachments: {
    id: col('uuid', false),
    attachable_type: col('text', true),
    attachable_id: col('uuid', true),
    file_name: col('text', false),
    content_type: col('text', false),
    size_bytes: col('int8', false),
    checksum_sha256: col('text', false),
    storage_key: col('text', false),
    revision: col('int4', false),
    parent_id: col('uuid', true),
    purged_at: col('timestamptz', true),
    ...extendedTrailing,
  },
  events: {
    id: col('uuid', false),
    eventable_type: col('text', true),
    eventable_id: col('uuid', true),
    title: col('text', false),
    description: col('text', true),
    location: col('text', true),
    starts_at: col('timestamptz', false),
    ends_at: col('timestamptz', false),
    all_day: col('bool', false),
    timezone: col('text', true),
    rrule: col('text', true),
    attendees: col('_uuid', false),
    ...extendedTrailing,
  },
  carbon_footprints: {
    id: col('uuid', false),
    scope: col('int2', true),
    category: col('text', true),
    activity: col('text', false),
    quantity: col('numeric', false),
    unit: col('text', false),
    emission_factor: col('numeric', true),
    co2e_kg: col('numeric', false),
    period_start: col('date', false),
    period_end: col('date', false),
    source: col('text', true),
    notes: col('text', true),
    ...extendedTrailing,
  },
  channel_configs: {
    id: col('uuid', false),
    channel: col('text', false),
    name: col('text', false),
    config: col('jsonb', false),
    encrypted_secrets: col('text', true),
    is_enabled: col('bool', false),
    is_default: col('bool', false),
    ...extendedTrailing,
  },
  reviews: {
    id: col('uuid', false),
    reviewable_type: col('text', true),
    reviewable_id: col('uuid', true),
    rating: col('int2', false),
    title: col('text', true),
    body: col('text', true),
    status: col('text', false),
    moderated_by: col('uuid', true),
    moderated_at: col('timestamptz', true),
    ...extendedTrailing,
  },
  activity_log: {
    id: col('uuid', false),
    user_id: col('uuid', true),
    action: col('text', false),
    details: col('jsonb', false),
    ip_address: col('inet', true),
    ...creation,
  },
} as const satisfies { readonly [T in TableName]: { readonly [column: string]: ColumnSpec } };

export type TenantColumns = typeof tenantColumns;

// ---------------------------------------------------------------------------
// Compile-time drift checks between TenantDatabase and tenantColumns
// ---------------------------------------------------------------------------

/** true iff A and B are the same type (not merely mutually assignable). */
export type Exact<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

type Row<T extends TableName> = Selectable<TenantDatabase[T]>;
type Spec<T extends TableName> = TenantColumns[T];

/** Columns whose select type includes null, according to the interface. */
type NullableInInterface<T extends TableName> = {
  [K in keyof Row<T>]-?: null extends Row<T>[K] ? K : never;
}[keyof Row<T>];

/** Columns marked nullable in the runtime map. */
type NullableInSpec<T extends TableName> = {
  [K in keyof Spec<T>]-?: Spec<T>[K] extends ColumnSpec<UdtName, true> ? K : never;
}[keyof Spec<T>];

/** Columns whose interface type is not exactly what their udt_name reads as. */
type TypeMismatches<T extends TableName> = {
  [K in keyof Spec<T> & keyof Row<T>]-?: Spec<T>[K] extends ColumnSpec<infer U>
    ? Exact<NonNullable<Row<T>[K]>, UdtSelectTypes[U]> extends true
      ? never
      : K
    : K;
}[keyof Spec<T> & keyof Row<T>];

/** The offending column names of one table, by kind of drift (all `never` when in sync). */
type Drift<T extends TableName> = {
  onlyInInterface: Exclude<keyof Row<T>, keyof Spec<T>>;
  onlyInColumnMap: Exclude<keyof Spec<T>, keyof Row<T>>;
  nullabilityDiffers:
    | Exclude<NullableInSpec<T>, NullableInInterface<T>>
    | Exclude<NullableInInterface<T>, NullableInSpec<T>>;
  typeDiffers: TypeMismatches<T>;
};

type NoDrift = { onlyInInterface: never; onlyInColumnMap: never; nullabilityDiffers: never; typeDiffers: never };

/**
 * Fails to compile unless every member of `D` is `never` (the table is in sync); the
 * error points at the table's line and names the offending columns.
 */
type AssertInSync<D extends NoDrift> = D;

/** Exported only so that the per-table checks are not reported as unused. */
export type TenantColumnsInSync = [
  AssertInSync<Drift<'roles'>>,
  AssertInSync<Drift<'permissions'>>,
  AssertInSync<Drift<'role_permissions'>>,
  AssertInSync<Drift<'users'>>,
  AssertInSync<Drift<'user_roles'>>,
  AssertInSync<Drift<'user_permissions'>>,
  AssertInSync<Drift<'teams'>>,
  AssertInSync<Drift<'team_members'>>,
  AssertInSync<Drift<'user_sessions'>>,
  AssertInSync<Drift<'settings'>>,
  AssertInSync<Drift<'audit_logs'>>,
  AssertInSync<Drift<'password_reset_tokens'>>,
  AssertInSync<Drift<'email_verification_tokens'>>,
  AssertInSync<Drift<'api_keys'>>,
  AssertInSync<Drift<'idempotency_keys'>>,
  AssertInSync<Drift<'notes'>>,
  AssertInSync<Drift<'logacalls'>>,
  AssertInSync<Drift<'tasks'>>,
  AssertInSync<Drift<'attachments'>>,
  AssertInSync<Drift<'events'>>,
  AssertInSync<Drift<'carbon_footprints'>>,
  AssertInSync<Drift<'channel_configs'>>,
  AssertInSync<Drift<'reviews'>>,
  AssertInSync<Drift<'activity_log'>>,
];
