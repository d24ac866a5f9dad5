/** The typed settings every tenant starts with; the service reads its policies from them. */
export type SettingType = 'string' | 'number' | 'boolean' | 'json';

export interface SettingValidation {
  readonly min?: number;
  readonly max?: number;
  readonly integer?: boolean;
  readonly allowed?: readonly string[];
}

export interface SettingDefinition {
  readonly key: string;
  readonly type: SettingType;
  readonly value: unknown;
  readonly category: string;
  readonly description: string;
  readonly isPublic: boolean;
  readonly validation: SettingValidation;
}

const int = (min: number, max: number): SettingValidation => ({ min, max, integer: true });

export const DEFAULT_SETTINGS: readonly SettingDefinition[] = [
  { key: 'password.min_length', type: 'number', value: 12, category: 'password', description: 'Minimum password length', isPublic: true, validation: int(8, 128) },
  { key: 'password.max_length', type: 'number', value: 128, category: 'password', description: 'Maximum password length (bounds hashing work)', isPublic: true, validation: int(16, 1024) },
  { key: 'password.require_mixed_case', type: 'boolean', value: false, category: 'password', description: 'Require both lower- and upper-case letters', isPublic: true, validation: {} },
  { key: 'password.require_digit', type: 'boolean', value: false, category: 'password', description: 'Require at least one digit', isPublic: true, validation: {} },
  { key: 'password.require_symbol', type: 'boolean', value: false, category: 'password', description: 'Require at least one character that is neither a letter nor a digit', isPublic: true, validation: {} },
  { key: 'session.access_token_ttl_seconds', type: 'number', value: 900, category: 'session', description: 'Lifetime of an access token', isPublic: false, validation: int(60, 86_400) },
  { key: 'session.idle_timeout_minutes', type: 'number', value: 1440, category: 'session', description: 'A session unused for this long ends', isPublic: false, validation: int(5, 525_600) },
  { key: 'session.absolute_timeout_hours', type: 'number', value: 720, category: 'session', description: 'A session ends this long after login, whatever its use', isPublic: false, validation: int(1, 8_760) },
  { key: 'lockout.max_failures', type: 'number', value: 10, category: 'lockout', description: 'Failed logins in a row that lock an account', isPublic: false, validation: int(1, 1000) },
  { key: 'lockout.duration_minutes', type: 'number', value: 15, category: 'lockout', description: 'First lockout length; each repeat doubles it', isPublic: false, validation: int(1, 10_080) },
  { key: 'lockout.max_duration_minutes', type: 'number', value: 1440, category: 'lockout', description: 'Upper bound of a grown lockout', isPublic: false, validation: int(1, 525_600) },
  { key: 'auth.require_email_verification', type: 'boolean', value: false, category: 'auth', description: 'Refuse login until the email address is verified', isPublic: true, validation: {} },
  { key: 'auth.password_reset_ttl_minutes', type: 'number', value: 60, category: 'auth', description: 'Lifetime of a password reset link', isPublic: false, validation: int(5, 10_080) },
  { key: 'auth.email_verification_ttl_hours', type: 'number', value: 48, category: 'auth', description: 'Lifetime of an email verification link', isPublic: false, validation: int(1, 720) },
  { key: 'auth.invitation_ttl_hours', type: 'number', value: 72, category: 'auth', description: 'Lifetime of an invitation (set-password) link', isPublic: false, validation: int(1, 720) },
  { key: 'auth.mfa', type: 'string', value: 'optional', category: 'auth', description: 'Multi-factor authentication: off (no second factor is enrolled or asked for), optional (users choose), required (users without a factor enrol at their next sign-in)', isPublic: true, validation: { allowed: ['off', 'optional', 'required'] } },
  { key: 'mail.enabled', type: 'boolean', value: true, category: 'mail', description: 'Send mail to users (invitations, password resets, email verification); a forked tenant starts with it off', isPublic: false, validation: {} },
  { key: 'locale.default', type: 'string', value: 'en', category: 'locale', description: 'Default locale (BCP 47)', isPublic: true, validation: {} },
  { key: 'timezone.default', type: 'string', value: 'UTC', category: 'locale', description: 'Default IANA time zone', isPublic: true, validation: {} },
  { key: 'attachments.max_size_mb', type: 'number', value: 25, category: 'attachments', description: 'Largest accepted upload', isPublic: true, validation: int(1, 1024) },
  { key: 'attachments.quota_mb', type: 'number', value: 1024, category: 'attachments', description: 'Most file bytes the tenant keeps (every version, until purged)', isPublic: false, validation: int(1, 10_485_760) },
  { key: 'search.language', type: 'string', value: 'simple', category: 'search', description: 'Text search configuration of GET search (simple, english, german, ...: one the database has); a change indexes every searchable row again', isPublic: false, validation: {} },
  { key: 'branding', type: 'json', value: { product_name: null, logo_url: null, primary_color: null }, category: 'branding', description: 'Names, logo and colours shown to users', isPublic: true, validation: {} },
];
