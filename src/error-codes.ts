/**
 * Every problem's stable machine `code`, the kind (HTTP status) it is answered with, and what
 * it means: the one table of docs/ERRORS.md (a test keeps the two equal). Codes never change
 * meaning; the human `detail` beside them may change wording (and language).
 */
export type ErrorKind =
  | 'invalid_input'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'precondition_failed'
  | 'precondition_required'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unprocessable'
  | 'upgrade_required'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

/** The status and title of each kind: the problem's `status`, `title` and `type` follow the kind. */
export const KINDS: Record<ErrorKind, { readonly status: number; readonly title: string }> = {
  invalid_input: { status: 400, title: 'Invalid input' },
  unauthenticated: { status: 401, title: 'Unauthenticated' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type' },
  unprocessable: { status: 422, title: 'Unprocessable request' },
  upgrade_required: { status: 426, title: 'Upgrade required' },
  precondition_required: { status: 428, title: 'Precondition required' },
  rate_limited: { status: 429, title: 'Too many requests' },
  unavailable: { status: 503, title: 'Service unavailable' },
  internal: { status: 500, title: 'Internal error' },
};

type Entry = readonly [ErrorKind, string];

export const ERROR_CODES = {
  // Requests
  'request.invalid': ['invalid_input', 'A field is missing, malformed or out of range: `errors` lists every failing field and why.'],
  'request.malformed': ['invalid_input', 'The request cannot be read (broken JSON, a bad header).'],
  'request.too_large': ['payload_too_large', 'The body (or an uploaded file) is over its size limit.'],
  'request.unsupported_media_type': ['unsupported_media_type', 'The body has a content type the route does not take.'],
  'request.version_mismatch': ['precondition_failed', '`If-Match` does not match the current version, or the row changed meanwhile: fetch it again.'],
  'request.rate_limited': ['rate_limited', 'Too many requests from this client; retry after the time the detail names.'],
  'request.cross_site': ['forbidden', 'A form of an account page was sent from another site (`Origin`, `Sec-Fetch-Site`): only the page itself may send it.'],
  'idempotency.in_progress': ['conflict', 'A request with this `Idempotency-Key` has not finished yet: retry.'],
  'idempotency.key_reused': ['unprocessable', 'This `Idempotency-Key` was used with a different request.'],
  'route.not_found': ['not_found', 'No route has this method and path.'],
  // Authentication
  'auth.credentials_required': ['unauthenticated', 'No Bearer token (or API key, on tenant routes) was sent.'],
  'auth.invalid_credentials': ['unauthenticated', 'The email/username and password do not match an active account (the same answer for every reason).'],
  'auth.invalid_token': ['unauthenticated', 'The access token is malformed, forged or not for this service.'],
  'auth.token_expired': ['unauthenticated', 'The access token has expired: refresh it.'],
  'auth.invalid_refresh_token': ['unauthenticated', 'The refresh token is unknown, retired, expired or its session ended.'],
  'auth.session_ended': ['unauthenticated', 'The session of the token was ended (logout, revocation, password change).'],
  'auth.account_inactive': ['unauthenticated', 'The account was suspended or deleted since the token was issued.'],
  'auth.invalid_api_key': ['unauthenticated', 'The API key is unknown, revoked or expired, or its owner is no longer active.'],
  'auth.invalid_ticket': ['unauthenticated', 'The realtime ticket is unknown, used, expired, or its session ended.'],
  'auth.invalid_system_token': ['unauthenticated', 'The system token is malformed, expired, too long-lived or not for this service.'],
  'auth.wrong_token_kind': ['forbidden', 'A valid token of another kind (a system token on a tenant route, or the reverse).'],
  'auth.wrong_tenant': ['forbidden', 'The token belongs to another tenant.'],
  'auth.email_not_verified': ['forbidden', 'The tenant requires a verified email address before sign-in.'],
  'auth.session_required': ['forbidden', 'The route needs a user session, not an API key.'],
  'auth.invalid_link_token': ['invalid_input', 'A reset or verification link is invalid, used or expired.'],
  'auth.wrong_password': ['invalid_input', '`current_password` is not the current password (counted towards the lockout), or the account is locked and it was not checked.'],
  'auth.email_already_verified': ['conflict', 'The email address is already verified.'],
  'auth.mfa_token_invalid': ['unauthenticated', 'The `mfa_token` is unknown, used, expired, of another tenant or for another step: sign in again.'],
  'auth.mfa_failed': ['unauthenticated', 'The second factor (TOTP code, recovery code or passkey assertion) is wrong or was used already; it counts as a failed login.'],
  'auth.passkey_failed': ['unauthenticated', 'The passwordless sign-in\'s passkey assertion does not verify: an unknown credential, a challenge unknown, used or expired, a wrong origin or signature, the user not verified, or the account locked or inactive (audited; not counted towards the lockout).'],
  // Permissions
  'permission.denied': ['forbidden', 'The caller lacks the permission the route needs (the detail names it).'],
  'permission.outranked': ['forbidden', 'The change would touch a user or role that holds something the caller does not hold.'],
  'permission.not_held': ['forbidden', 'The caller cannot give (to a role, user or API key) a permission it does not hold.'],
  'permission.self_change': ['forbidden', 'Nobody changes their own roles or permissions, or deletes their own account here.'],
  'permission.actor_required': ['forbidden', 'Only a user or an API key may change users and roles.'],
  'permission.route_undeclared': ['forbidden', 'The route declares no access rule (a server defect, refused rather than opened).'],
  // Users
  'user.not_found': ['not_found', 'No such user in this tenant (or it is deleted).'],
  'user.email_taken': ['conflict', 'Another user of the tenant has this email address.'],
  'user.username_taken': ['conflict', 'Another user of the tenant has this username.'],
  'user.last_superuser': ['conflict', 'The change would leave the tenant without an active user who holds every permission.'],
  'user.not_deleted': ['not_found', 'No deleted user with this id to restore.'],
  'override.not_found': ['not_found', 'The user has no override for this permission.'],
  'session.not_found': ['not_found', 'No such live session of this user.'],
  'api_key.not_found': ['not_found', 'No such API key.'],
  // Multi-factor authentication
  'mfa.disabled': ['conflict', 'The tenant\'s `auth.mfa` setting is `off`: no factor can be enrolled.'],
  'mfa.already_enrolled': ['conflict', 'TOTP is already active for this user: disable it first.'],
  'mfa.not_found': ['not_found', 'The user has no such factor (no TOTP enrolment, no such passkey).'],
  'mfa.invalid_code': ['invalid_input', 'The TOTP code (or the password, or the passkey assertion) given to confirm or change a factor is wrong or was used already (a wrong code or password to change a factor counts towards the lockout), or the account is locked and it was not checked.'],
  'mfa.passkey_invalid': ['invalid_input', 'The passkey registration response does not verify: its challenge is unknown, used, expired or another step\'s, or its origin, RP ID or attestation is wrong.'],
  'mfa.passkey_exists': ['conflict', 'This passkey (its credential ID) is registered already.'],
  // Roles
  'role.not_found': ['not_found', 'No such role in this tenant.'],
  'role.name_taken': ['conflict', 'Another role of the tenant has this name.'],
  'role.system_immutable': ['conflict', 'System roles cannot be renamed or deleted; the admin role\'s entries and priority are fixed.'],
  'role.assigned': ['conflict', 'The role is assigned to users: take it from them first.'],
  // Teams
  'team.not_found': ['not_found', 'No such team in this tenant.'],
  'team.name_taken': ['conflict', 'Another team of the tenant has this name.'],
  'team.cycle': ['conflict', 'A team cannot be nested under itself or one of its sub-teams.'],
  'team.has_children': ['conflict', 'The team has sub-teams: move or delete them first.'],
  'team_member.not_found': ['not_found', 'The user is not a member of the team.'],
  // Settings
  'setting.not_found': ['not_found', 'No such setting.'],
  // Tenants
  'tenant.not_found': ['not_found', 'No such tenant (or it is not active).'],
  'tenant.migrating': ['unavailable', "The tenant's schema is behind this release (the tables a request needs are not there yet): it answers 503 until `tenants migrate --all` has migrated it."],
  'tenant.quarantined': ['unavailable', 'The tenant\'s schema failed its last migration: it answers 503 until it is migrated again (`tenants migrate --retry-failed`).'],
  'tenant.slug_taken': ['conflict', 'A tenant with this slug already exists.'],
  'tenant.archive_invalid': ['invalid_input', 'The tenant archive is broken (gzip, tar), altered (a checksum or row count differs from its manifest), of another format, or of a newer schema version.'],
  'tenant.suspended': ['forbidden', 'The tenant is suspended: its routes answer 403 until a platform operator makes it active again.'],
  'tenant.not_ready': ['conflict', 'The tenant\'s schema is not ready (initializing or failed): it cannot be exported, forked or backed up now.'],
  'backup.not_found': ['not_found', 'No such backup of this tenant.'],
  'schema.not_found': ['not_found', 'The tenant schema does not exist (CLI).'],
  // Records (notes, calls, tasks, attachments, events, carbon footprints, channel configs, reviews)
  'record.not_found': ['not_found', 'No such record in this tenant (or it is deleted).'],
  'record.not_deleted': ['conflict', 'Restore of a record that is not deleted.'],
  'record.parent_deleted': ['conflict', 'The row the record is attached to is deleted: restore it first.'],
  'record.conflict': ['conflict', 'A record with the same unique value already exists.'],
  'task.invalid_transition': ['conflict', 'The task\'s status cannot move to the requested one (the detail lists the allowed moves).'],
  'review.self_moderation': ['forbidden', 'A review cannot be moderated by its author.'],
  'attachment.purged': ['conflict', 'The file was purged: its bytes are gone.'],
  'attachment.not_purgeable': ['conflict', 'The attachment is not deleted yet, or already purged.'],
  'attachment.quota_exceeded': ['payload_too_large', 'The tenant\'s files would exceed its quota (setting `attachments.quota_mb`).'],
  'file.not_found': ['not_found', 'The stored bytes of the file are gone.'],
  'channel_config.undecryptable': ['conflict', 'The stored secrets cannot be decrypted with the configured keys: send new values.'],
  'webhook.not_found': ['not_found', 'No such webhook endpoint in this tenant.'],
  'realtime.upgrade_required': ['upgrade_required', 'The realtime route speaks WebSocket only: send an upgrade request.'],
  'webhook_delivery.not_found': ['not_found', 'No such delivery of this webhook endpoint.'],
  'oidc_client.not_found': ['not_found', 'No such OpenID Connect client in this tenant.'],
  // Requests the database refuses
  'database.unique_violation': ['conflict', 'A row with the same unique value already exists.'],
  'database.reference_missing': ['invalid_input', 'A referenced row does not exist.'],
  'database.constraint_violation': ['invalid_input', 'A value breaks a constraint, is missing, or has the wrong format, length or range.'],
  'database.concurrent_change': ['conflict', 'A concurrent change conflicted with this one, or holds its row: retry.'],
  'database.busy': ['unavailable', 'The database has no free connections: retry shortly.'],
  'database.unavailable': ['unavailable', 'The database is unreachable or restarting: retry shortly.'],
  'service.not_ready': ['unavailable', 'The service is starting, stopping, or a dependency is down (readiness).'],
  internal: ['internal', 'An unexpected error; the `request_id` finds it in the logs.'],
} as const satisfies Record<string, Entry>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const kindOf = (code: ErrorCode): ErrorKind => ERROR_CODES[code][0];
