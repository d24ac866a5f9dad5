import type { Kysely } from 'kysely';
import type { PasswordPolicy } from '../auth/passwords.js';
import type { Change, Changes } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantContext } from '../tenancy/directory.js';
import { DEFAULT_SETTINGS } from './defaults.js';

/** The policies the service reads from a tenant's settings. */
export interface TenantPolicy {
  readonly password: PasswordPolicy;
  readonly accessTokenTtlSeconds: number;
  readonly idleTimeoutMinutes: number;
  readonly absoluteTimeoutHours: number;
  readonly lockout: { readonly maxFailures: number; readonly durationMinutes: number; readonly maxDurationMinutes: number };
  readonly requireEmailVerification: boolean;
  readonly passwordResetTtlMinutes: number;
  readonly emailVerificationTtlHours: number;
  readonly invitationTtlHours: number;
  /** auth.mfa: whether a second factor is off, the user's choice, or required of everyone. */
  readonly mfa: MfaMode;
  /** mail.enabled: whether mail goes out to the tenant's users at all. */
  readonly mailEnabled: boolean;
  /** Largest accepted upload, in bytes (attachments.max_size_mb). */
  readonly attachmentsMaxBytes: number;
  /** The name users know the tenant by in mails and pages (`branding.product_name`), when set. */
  readonly productName: string | null;
  /** The logo and colour of `branding` that pages may show (unsafe values are dropped). */
  readonly branding: Branding;
  /** `locale.default` and `timezone.default`: the language and zone of answers and mails when the user has none. */
  readonly defaultLocale: string;
  readonly defaultTimezone: string;
}

const DEFAULTS = new Map(DEFAULT_SETTINGS.map((s) => [s.key, s.value]));

export function policyFrom(values: ReadonlyMap<string, unknown>): TenantPolicy {
  const num = (key: string) => {
    const v = values.get(key) ?? DEFAULTS.get(key);
    return typeof v === 'number' ? v : Number(DEFAULTS.get(key));
  };
  const bool = (key: string) => {
    const v = values.get(key) ?? DEFAULTS.get(key);
    return typeof v === 'boolean' ? v : Boolean(DEFAULTS.get(key));
  };
  const text = (key: string) => {
    const v = values.get(key) ?? DEFAULTS.get(key);
    return typeof v === 'string' ? v : String(DEFAULTS.get(key));
  };
  return {
    password: {
      minLength: num('password.min_length'),
      maxLength: num('password.max_length'),
      requireMixedCase: bool('password.require_mixed_case'),
      requireDigit: bool('password.require_digit'),
      requireSymbol: bool('password.require_symbol'),
    },
    accessTokenTtlSeconds: num('session.access_token_ttl_seconds'),
    idleTimeoutMinutes: num('session.idle_timeout_minutes'),
    absoluteTimeoutHours: num('session.absolute_timeout_hours'),
    lockout: { maxFailures: num('lockout.max_failures'), durationMinutes: num('lockout.duration_minutes'), maxDurationMinutes: num('lockout.max_duration_minutes') },
    requireEmailVerification: bool('auth.require_email_verification'),
    passwordResetTtlMinutes: num('auth.password_reset_ttl_minutes'),
    emailVerificationTtlHours: num('auth.email_verification_ttl_hours'),
    invitationTtlHours: num('auth.invitation_ttl_hours'),
    mfa: mfaMode(text('auth.mfa')),
    mailEnabled: bool('mail.enabled'),
    attachmentsMaxBytes: num('attachments.max_size_mb') * 1024 * 1024,
    productName: productName(values.get('branding')),
    branding: branding(values.get('branding')),
    defaultLocale: text('locale.default'),
    defaultTimezone: text('timezone.default'),
  };
}

export type MfaMode = 'off' | 'optional' | 'required';

function mfaMode(value: string): MfaMode {
  return value === 'off' || value === 'required' ? value : 'optional';
}

function productName(branding: unknown): string | null {
  const name = typeof branding === 'object' && branding !== null ? (branding as { product_name?: unknown }).product_name : undefined;
  return typeof name === 'string' && name.trim() !== '' ? name.trim() : null;
}

/** What of `branding` a page shows besides the product name. */
export interface Branding {
  /** An https URL: anything else could load from where the page's policy does not allow. */
  readonly logoUrl: string | null;
  /** A hex colour (`#0b57d0`): the value goes into a stylesheet. */
  readonly primaryColor: string | null;
}

function branding(value: unknown): Branding {
  const b = typeof value === 'object' && value !== null ? (value as { logo_url?: unknown; primary_color?: unknown }) : {};
  const color = typeof b.primary_color === 'string' && /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(b.primary_color.trim()) ? b.primary_color.trim() : null;
  return { logoUrl: httpsUrl(b.logo_url), primaryColor: color };
}

function httpsUrl(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > 2000) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'https:' && url.username === '' && url.password === '' ? url.href : null;
  } catch {
    return null;
  }
}

/** How mails and pages name the tenant: its branding's product name, else its registered name. */
export const displayName = (tenant: TenantContext, policy: TenantPolicy): string => policy.productName ?? tenant.name;

const settingsKey = (tenant: TenantContext) => `settings:${tenant.schema}`;

/** A tenant's policies, read from its settings table; cached, invalidated when a setting changes. */
export class PolicyReader {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
    changes: Changes,
  ) {
    changes.listen(this);
  }

  async policy(tenant: TenantContext): Promise<TenantPolicy> {
    return this.local.load(settingsKey(tenant), async () => {
      const rows = await tenantDb(this.db, tenant.schema).selectFrom('settings').select(['key', 'value']).execute();
      return policyFrom(new Map(rows.map((r) => [r.key, r.value])));
    });
  }

  /** policy without a promise: the tenant's policies when they are cached, undefined otherwise. */
  cached(tenant: TenantContext): TenantPolicy | undefined {
    return this.local.get<TenantPolicy>(settingsKey(tenant));
  }

  /** Drops the cached policies when a setting changed (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    return change.kind === 'settings' || change.kind === 'tenant' ? this.local.invalidate(settingsKey(tenant)) : undefined;
  }
}
