import type { Selectable } from 'kysely';
import type { JsonValue, TableName, TenantDatabase } from './types.js';

/*
 * The columns of every tenant table at run time (udt_name and nullability, as
 * information_schema reports them): tests compare them with migrated schemas, and the checks at
 * the end of the file tie them to the Kysely interfaces of types.ts at compile time.
 */

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
  regconfig: string;
  tsvector: string;
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

/** The search columns of migration 0011 (types.ts SearchColumns). */
const search = {
  search_config: col('regconfig', false),
  search_tsv: col('tsvector', false),
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
    ...search,
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
    ...search,
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
    seq: col('int8', false),
    hash: col('text', false),
    ...creation,
  },
  audit_chain: {
    one_row: col('bool', false),
    seq: col('int8', false),
    hash: col('text', false),
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
  outbox_events: {
    seq: col('int8', false),
    id: col('text', false),
    type: col('text', false),
    actor_user_id: col('uuid', true),
    data: col('jsonb', false),
    occurred_at: col('timestamptz', false),
    dispatched_at: col('timestamptz', true),
  },
  realtime_tickets: {
    ticket_hash: col('text', false),
    user_id: col('uuid', false),
    session_id: col('uuid', false),
    expires_at: col('timestamptz', false),
    created_at: col('timestamptz', false),
  },
  mfa_totp: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    encrypted_secret: col('text', false),
    confirmed_at: col('timestamptz', true),
    last_used_step: col('int4', true),
    ...creation,
  },
  mfa_recovery_codes: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    code_hash: col('text', false),
    used_at: col('timestamptz', true),
    created_at: col('timestamptz', false),
  },
  mfa_challenges: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    purpose: col('text', false),
    token_hash: col('text', false),
    attempts: col('int4', false),
    expires_at: col('timestamptz', false),
    used_at: col('timestamptz', true),
    created_at: col('timestamptz', false),
  },
  mfa_passkeys: {
    id: col('uuid', false),
    user_id: col('uuid', false),
    credential_id: col('text', false),
    public_key: col('bytea', false),
    counter: col('int8', false),
    transports: col('_text', false),
    name: col('text', false),
    backed_up: col('bool', false),
    created_at: col('timestamptz', false),
    last_used_at: col('timestamptz', true),
  },
  mfa_passkey_challenges: {
    id: col('uuid', false),
    user_id: col('uuid', true),
    purpose: col('text', false),
    challenge: col('text', false),
    mfa_challenge_id: col('uuid', true),
    expires_at: col('timestamptz', false),
    created_at: col('timestamptz', false),
  },
  oidc_clients: {
    id: col('uuid', false),
    name: col('text', false),
    type: col('text', false),
    client_secret_hash: col('text', true),
    redirect_uris: col('_text', false),
    post_logout_redirect_uris: col('_text', false),
    grant_types: col('_text', false),
    version: col('int4', false),
    ...creation,
  },
  oidc_payloads: {
    model: col('text', false),
    id: col('text', false),
    payload: col('jsonb', false),
    grant_id: col('text', true),
    uid: col('text', true),
    session_id: col('uuid', true),
    expires_at: col('timestamptz', true),
    consumed_at: col('timestamptz', true),
    created_at: col('timestamptz', false),
  },
  oidc_signing_keys: {
    id: col('uuid', false),
    kid: col('text', false),
    alg: col('text', false),
    public_jwk: col('jsonb', false),
    encrypted_private_jwk: col('text', false),
    retired_at: col('timestamptz', true),
    published_until: col('timestamptz', true),
    ...creation,
  },
  webhooks: {
    id: col('uuid', false),
    url: col('text', false),
    events: col('_text', false),
    description: col('text', true),
    enabled: col('bool', false),
    encrypted_secret: col('text', false),
    failing_since: col('timestamptz', true),
    disabled_reason: col('text', true),
    version: col('int4', false),
    ...creation,
  },
  webhook_deliveries: {
    id: col('uuid', false),
    webhook_id: col('uuid', false),
    event_seq: col('int8', false),
    event_id: col('text', false),
    event_type: col('text', false),
    payload: col('text', false),
    status: col('text', false),
    attempts: col('int4', false),
    last_status_code: col('int4', true),
    last_error: col('text', true),
    next_attempt_at: col('timestamptz', false),
    delivered_at: col('timestamptz', true),
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
    ...search,
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
    ...search,
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
    ...search,
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
    ...search,
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
    ...search,
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
    ...search,
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
  AssertInSync<Drift<'audit_chain'>>,
  AssertInSync<Drift<'password_reset_tokens'>>,
  AssertInSync<Drift<'email_verification_tokens'>>,
  AssertInSync<Drift<'api_keys'>>,
  AssertInSync<Drift<'idempotency_keys'>>,
  AssertInSync<Drift<'outbox_events'>>,
  AssertInSync<Drift<'realtime_tickets'>>,
  AssertInSync<Drift<'mfa_totp'>>,
  AssertInSync<Drift<'mfa_recovery_codes'>>,
  AssertInSync<Drift<'mfa_challenges'>>,
  AssertInSync<Drift<'mfa_passkeys'>>,
  AssertInSync<Drift<'mfa_passkey_challenges'>>,
  AssertInSync<Drift<'oidc_clients'>>,
  AssertInSync<Drift<'oidc_payloads'>>,
  AssertInSync<Drift<'oidc_signing_keys'>>,
  AssertInSync<Drift<'webhooks'>>,
  AssertInSync<Drift<'webhook_deliveries'>>,
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
