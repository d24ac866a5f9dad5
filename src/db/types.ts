import type { ColumnType, Generated } from 'kysely';

/*
 * Kysely table interfaces for one tenant schema. Their runtime description, which tests
 * compare with information_schema, is `tenantColumns` in columns.ts, tied to these at compile
 * time.
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

/** The transactional outbox: one event per audited change, in order by `seq`. */
export interface OutboxEventsTable {
  seq: ColumnType<string, never, never>;
  id: string;
  type: string;
  actor_user_id: string | null;
  data: Json;
  occurred_at: GeneratedTimestamp;
  dispatched_at: Timestamp | null;
}

export interface RealtimeTicketsTable {
  ticket_hash: string;
  user_id: string;
  session_id: string;
  expires_at: Timestamp;
  created_at: GeneratedTimestamp;
}

export interface WebhooksTable {
  id: Generated<string>;
  url: string;
  events: string[];
  description: string | null;
  enabled: Generated<boolean>;
  encrypted_secret: string;
  failing_since: Timestamp | null;
  disabled_reason: string | null;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  webhook_id: string;
  event_seq: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: Generated<string>;
  attempts: Generated<number>;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: GeneratedTimestamp;
  delivered_at: Timestamp | null;
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
  outbox_events: OutboxEventsTable;
  webhooks: WebhooksTable;
  realtime_tickets: RealtimeTicketsTable;
  webhook_deliveries: WebhookDeliveriesTable;
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
