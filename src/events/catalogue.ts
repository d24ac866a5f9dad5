/**
 * Event types (`<resource>.<verb>`, the resource singular) and the audit actions they come
 * from: every audited change writes one event of the type its action maps to. Actions that
 * record a request rather than a change (a reset mail asked for, a permission refused) map to
 * none. docs/EVENTS.md lists them with an example each.
 */

/** Audit table names (`entity_type`, the first part of actions) and their singular resource in event types. */
const SINGULAR: Record<string, string> = {
  users: 'user',
  roles: 'role',
  teams: 'team',
  settings: 'setting',
  sessions: 'session',
  api_keys: 'api_key',
  notes: 'note',
  logacalls: 'logacall',
  tasks: 'task',
  attachments: 'attachment',
  events: 'event',
  carbon_footprints: 'carbon_footprint',
  channel_configs: 'channel_config',
  reviews: 'review',
  webhooks: 'webhook',
};

const VERBS: Record<string, string> = { create: 'created', update: 'updated', delete: 'deleted', restore: 'restored' };

/** Actions whose event is not `<singular>.<verb>` of their own name. */
const SPECIAL: Record<string, string | null> = {
  'users.update_roles': 'user.roles_changed',
  'users.set_permission': 'user.permissions_changed',
  'users.remove_permission': 'user.permissions_changed',
  'users.unlock': 'user.updated',
  'teams.set_member': 'team.updated',
  'teams.remove_member': 'team.updated',
  'attachments.purge': 'attachment.deleted',
  'sessions.delete': 'session.revoked',
  'webhooks.disable': 'webhook.disabled',
  'auth.login': 'auth.login',
  'auth.login_failed': 'auth.login_failed',
  'auth.logout': 'session.revoked',
  'auth.refresh_reuse': 'session.revoked',
  'auth.lockout': 'user.updated',
  'auth.password_changed': 'user.updated',
  'auth.password_reset': 'user.updated',
  'auth.email_verified': 'user.updated',
  // Multi-factor authentication (SPEC section 19): `data` is `{id: user id, method, ...}`.
  'auth.mfa_required': 'auth.mfa_required',
  'auth.mfa_enrolment_required': 'auth.mfa_enrolment_required',
  'mfa.totp_started': 'mfa.enrolment_started',
  'mfa.totp_confirmed': 'mfa.enrolled',
  'mfa.totp_disabled': 'mfa.removed',
  'mfa.recovery_codes_generated': 'mfa.recovery_codes_generated',
  'mfa.recovery_code_used': 'mfa.recovery_code_used',
  'mfa.reset': 'mfa.reset',
  'mfa.passkey_started': 'mfa.enrolment_started',
  'mfa.passkey_registered': 'mfa.enrolled',
  'mfa.passkey_removed': 'mfa.removed',
  'mfa.passkey_clone_suspected': 'mfa.passkey_clone_suspected',
  'auth.mfa_passkey_challenge': 'auth.mfa_passkey_challenge',
  // Requests and refusals, not changes: audited, no event.
  'auth.password_reset_requested': null,
  'auth.password_reset_limited': null,
  'auth.email_verification_requested': null,
  'auth.permission_denied': null,
  'auth.refresh': null,
};

/** The event type an audit action writes, or null when it writes none. */
export function eventTypeOf(action: string): string | null {
  if (action in SPECIAL) return SPECIAL[action]!;
  const [table, verb] = action.split('.');
  const singular = SINGULAR[table ?? ''];
  const past = VERBS[verb ?? ''];
  return singular && past ? `${singular}.${past}` : null;
}

/** Every event type the service emits (the webhook `events` filter is checked against it). */
export const EVENT_TYPES: readonly string[] = [
  ...new Set([
    ...Object.values(SINGULAR).flatMap((r) => Object.values(VERBS).map((v) => `${r}.${v}`)),
    ...Object.values(SPECIAL).filter((t): t is string => t !== null),
  ]),
]
  .filter((t) => !['session.created', 'session.updated', 'session.restored', 'setting.created', 'setting.deleted', 'setting.restored', 'api_key.updated', 'api_key.restored', 'role.restored', 'team.restored', 'webhook.restored'].includes(t))
  .sort();

/** The resource (as permissions name it) whose `read` permission lets a user see an event. */
export function resourceOfEvent(type: string): string {
  const singular = type.slice(0, type.indexOf('.'));
  if (singular === 'auth') return 'audit_logs';
  return Object.entries(SINGULAR).find(([, s]) => s === singular)?.[0] ?? 'audit_logs';
}

/** Whether `type` is selected by a filter (`user.created`, `user.*`, `*`). */
export function matchesFilter(type: string, filters: readonly string[]): boolean {
  return filters.some((f) => f === '*' || f === type || (f.endsWith('.*') && type.startsWith(f.slice(0, -1))));
}
