import { isIP } from 'node:net';
import path from 'node:path';
import { weakKeyReason, weakSecretReason } from './secret-strength.js';

/** Named prepared statements a connection keeps unless DATABASE_PREPARED_STATEMENTS says otherwise. */
export const DEFAULT_PREPARED_STATEMENTS = 100;

/** Raised for any bad or missing setting; its message is the one line printed at start-up. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`Invalid configuration: ${variable} ${reason}`);
    this.name = 'ConfigError';
  }
}

export const ENVIRONMENTS = ['development', 'test', 'production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly environment: Environment;
  /** Unset: the service runs an embedded PostgreSQL under `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** The owner role that runs migrations (unset: DATABASE_URL's role does, and owns the schemas). */
  readonly databaseOwnerUrl: string | undefined;
  /** Production answers requests as a superuser only when this is set. */
  readonly allowSuperuser: boolean;
  /** Each tenant schema has its own role, set for every tenant statement (docs/OPERATIONS.md). */
  readonly tenantRoles: boolean;
  readonly redisUrl: string | undefined;
  readonly jwt: {
    readonly algorithm: JwtAlgorithm;
    /** Unset outside production: generated once and kept in `dataDir`. */
    readonly secretKey: string | undefined;
  };
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly smtpUrl: string | undefined;
  readonly logLevel: LogLevel;
  readonly pool: {
    readonly max: number;
    readonly connectionTimeoutMs: number;
    /** Named prepared statements kept per connection; 0 sends every statement unnamed (see docs/OPERATIONS.md). */
    readonly preparedStatements: number;
  };
  readonly migrationConcurrency: number;
  /** Tenant schemas kept provisioned ahead of demand (see docs/OPERATIONS.md). */
  readonly spareSchemas: number;
  /** Port for the embedded PostgreSQL; 0 picks a free one. */
  readonly embeddedPostgresPort: number;
  readonly shutdownTimeoutMs: number;
  /** Base URL of the pages that take password-reset and verification tokens (links in mail). */
  readonly publicUrl: string;
  /** Browser front ends on these exact origins may call the API (CORS); empty: no CORS headers at all. */
  readonly corsOrigins: readonly string[];
  readonly authRateLimitPerMinute: number;
  /** Where attachment bytes are kept (local-disk storage). */
  readonly attachmentsDir: string;
  /** Tenant backups (SPEC §13): where archives go, how often (ms; null: only on demand), kept how many days, the largest archive an import takes. */
  readonly backups: { readonly dir: string; readonly everyMs: number | null; readonly retentionDays: number; readonly maxArchiveBytes: number };
  /** AES-256-GCM keys of channel secrets: `key` encrypts, all decrypt (see docs/OPERATIONS.md). */
  readonly channelSecrets: {
    /** Unset outside production: generated once and kept in `dataDir`. */
    readonly key: Buffer | undefined;
    readonly previousKeys: readonly Buffer[];
  };
  /** HMAC key of idempotency fingerprints; unset: derived from the JWT key material (see docs/OPERATIONS.md). */
  readonly idempotencyKey: Buffer | undefined;
  /** Whose X-Forwarded-For is believed: nobody (false), every hop (true), a hop count, or these addresses/CIDRs. */
  readonly trustProxy: boolean | number | readonly string[];
  readonly http: {
    /** Longest time to receive a whole request (headers and body). */
    readonly requestTimeoutMs: number;
    /** Longest time to receive a request's headers. */
    readonly headersTimeoutMs: number;
    /** How long an idle keep-alive connection stays open between requests. */
    readonly keepAliveTimeoutMs: number;
  };
  /** GET /metrics (docs/OPERATIONS.md): request histogram on or off, its Bearer token, the busiest tenants labelled. */
  readonly metrics: { readonly enabled: boolean; readonly token: string | undefined; readonly tenantLabels: number };
  /** Claims a system token must carry (SPEC §10). */
  readonly systemToken: { readonly issuer: string; readonly audience: string };
  /** Events and webhooks (docs/EVENTS.md). */
  readonly events: {
    /** Webhook targets on private, loopback and link-local addresses (default: outside production only). */
    readonly allowPrivateNetworks: boolean;
    /** How often each instance looks for other instances' events. */
    readonly pollMs: number;
    /** Dispatched events and finished deliveries are kept this many days. */
    readonly retentionDays: number;
    /** An endpoint failing this many days without a success is disabled. */
    readonly disableAfterDays: number;
    /** Webhook requests in flight at once (each endpoint: one at a time). */
    readonly concurrency: number;
    /** A webhook request without an answer after this long failed (and is retried). */
    readonly timeoutMs: number;
  };
}

/** Reads a 32-byte key given as 64 hex characters or as base64 (standard or url-safe). */
export function parseSecretKey(text: string, variable: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) throw new ConfigError(variable, 'must be 32 bytes, as 64 hex characters or base64 (e.g. `openssl rand -base64 32`)');
  return key;
}

/** In production a key of little entropy (one byte repeated, a short pattern) stops start-up. */
function strongKey(key: Buffer, variable: string, production: boolean): Buffer {
  const weak = production ? weakKeyReason(key) : undefined;
  if (weak) throw new ConfigError(variable, `is too weak for production: ${weak} (use e.g. \`openssl rand -base64 32\`)`);
  return key;
}

type Env = Readonly<Record<string, string | undefined>>;

function optional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got "${value}")`);
  }
  return value as T;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(name, `must be an integer from ${min} to ${max} (got "${value}")`);
  }
  return parsed;
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const value = optional(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, 'must be a URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.map((p) => `${p}//`).join(' or ')} (got "${parsed.protocol}//")`);
  }
  return value;
}

const CIDR = /^(.+)\/(\d{1,3})$/;

/** TRUST_PROXY: unset/false, true, a hop count, or a comma-separated list of addresses and CIDRs. */
function trustProxy(env: Env): boolean | number | string[] {
  const value = optional(env, 'TRUST_PROXY');
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return integer(env, 'TRUST_PROXY', 0, 0, 100);
  const entries = value.split(',').map((e) => e.trim()).filter(Boolean);
  for (const entry of entries) {
    const cidr = CIDR.exec(entry);
    const address = cidr ? cidr[1]! : entry;
    const family = isIP(address);
    if (family === 0 || (cidr && Number(cidr[2]) > (family === 4 ? 32 : 128))) {
      throw new ConfigError('TRUST_PROXY', `must be true, false, a hop count or a comma-separated list of IP addresses and CIDRs (got "${entry}")`);
    }
  }
  return entries;
}

/** CORS_ORIGINS: a comma-separated list of exact origins (`https://app.example.com`), each as a browser sends it. */
function corsOrigins(env: Env): string[] {
  const entries = (optional(env, 'CORS_ORIGINS') ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  for (const entry of entries) {
    let origin: string | undefined;
    try {
      const parsed = new URL(entry);
      origin = parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.origin : undefined;
    } catch {
      origin = undefined;
    }
    // A browser's Origin is lower-case, without path, trailing slash or default port: anything else would never match.
    if (origin !== entry) {
      throw new ConfigError('CORS_ORIGINS', `must be a comma-separated list of origins such as https://app.example.com: http(s), lower-case host, a port only when not the default, no path, no trailing slash, no wildcard (got "${entry}"${origin ? `; did you mean "${origin}"?` : ''})`);
    }
  }
  return entries;
}

/** A value of the `iss`/`aud` claims: printable, no spaces. */
function claim(env: Env, name: string, fallback: string): string {
  const value = optional(env, name) ?? fallback;
  if (!/^[\x21-\x7e]{1,200}$/.test(value)) throw new ConfigError(name, 'must be 1-200 printable characters without spaces');
  return value;
}

/** Parses the environment once; every later read goes through the returned object. */
/**
 * `BACKUP_SCHEDULE`: off, hourly, daily, weekly, or every N seconds, minutes or hours (`30s`,
 * `15m`, `6h`): the interval in ms, null when off, undefined when the value means nothing.
 */
export function parseBackupSchedule(value: string): number | null | undefined {
  const named: Record<string, number | null> = { off: null, hourly: 3_600_000, daily: 86_400_000, weekly: 604_800_000 };
  if (Object.hasOwn(named, value)) return named[value]!;
  const m = /^([1-9][0-9]{0,5})(s|m|h)$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

function backupSchedule(env: Env): number | null {
  const value = optional(env, 'BACKUP_SCHEDULE') ?? 'off';
  const every = parseBackupSchedule(value);
  if (every === undefined) throw new ConfigError('BACKUP_SCHEDULE', 'must be off, hourly, daily, weekly, or an interval such as 30s, 15m or 6h');
  return every;
}

/** METRICS_TOKEN, if set: long enough not to be guessed. */
function metricsToken(env: Env): string | undefined {
  const token = optional(env, 'METRICS_TOKEN');
  if (token !== undefined && token.length < 16) throw new ConfigError('METRICS_TOKEN', 'must be at least 16 characters (e.g. `openssl rand -hex 16`)');
  return token;
}

export function loadConfig(env: Env = process.env): Config {
  const environment = oneOf(env, 'ENVIRONMENT', ENVIRONMENTS, 'development');
  const algorithm = oneOf(env, 'JWT_ALGORITHM', JWT_ALGORITHMS, 'HS256');
  const secretKey = optional(env, 'JWT_SECRET_KEY');
  if (environment === 'production' && secretKey === undefined) {
    throw new ConfigError('JWT_SECRET_KEY', 'is required when ENVIRONMENT=production');
  }
  if (secretKey !== undefined && algorithm.startsWith('HS') && secretKey.length < 32) {
    throw new ConfigError('JWT_SECRET_KEY', `must be at least 32 characters for ${algorithm}`);
  }
  const production = environment === 'production';
  if (production && secretKey !== undefined && algorithm.startsWith('HS')) {
    const weak = weakSecretReason(secretKey);
    if (weak) throw new ConfigError('JWT_SECRET_KEY', `is too weak for production: ${weak} (use e.g. \`openssl rand -base64 48\`)`);
  }
  const channelKey = optional(env, 'CHANNEL_SECRETS_KEY');
  if (production && channelKey === undefined) {
    throw new ConfigError('CHANNEL_SECRETS_KEY', 'is required when ENVIRONMENT=production');
  }
  const channelSecretsKey = channelKey === undefined ? undefined : strongKey(parseSecretKey(channelKey, 'CHANNEL_SECRETS_KEY'), 'CHANNEL_SECRETS_KEY', production);
  const idempotencyText = optional(env, 'IDEMPOTENCY_KEY');
  const idempotencyKey = idempotencyText === undefined ? undefined : strongKey(parseSecretKey(idempotencyText, 'IDEMPOTENCY_KEY'), 'IDEMPOTENCY_KEY', production);
  const requestTimeoutMs = integer(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 1000, 3_600_000);
  const headersTimeoutMs = integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 1000, 3_600_000);
  // Node refuses a header timeout longer than the request timeout.
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS', `must not exceed HTTP_REQUEST_TIMEOUT_MS (${requestTimeoutMs})`);
  const previousKeys = (optional(env, 'CHANNEL_SECRETS_PREVIOUS_KEYS') ?? '')
    .split(',')
    .filter((k) => k.trim() !== '')
    .map((k) => parseSecretKey(k, 'CHANNEL_SECRETS_PREVIOUS_KEYS'));
  const dataDir = path.resolve(optional(env, 'DATA_DIR') ?? './.data');
  const port = integer(env, 'SERVICE_PORT', 8004, 0, 65535);
  const host = optional(env, 'SERVICE_HOST') ?? '0.0.0.0';
  if (/\s/.test(host)) throw new ConfigError('SERVICE_HOST', 'must be a host name or address');

  if (optional(env, 'DATABASE_OWNER_URL') && !optional(env, 'DATABASE_URL')) throw new ConfigError('DATABASE_OWNER_URL', 'needs DATABASE_URL (the runtime role) beside it');

  return {
    environment,
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databaseOwnerUrl: url(env, 'DATABASE_OWNER_URL', ['postgres:', 'postgresql:']),
    allowSuperuser: oneOf(env, 'DATABASE_ALLOW_SUPERUSER', ['true', 'false'] as const, 'false') === 'true',
    tenantRoles: oneOf(env, 'DATABASE_TENANT_ROLES', ['true', 'false'] as const, 'true') === 'true',
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    jwt: { algorithm, secretKey },
    port,
    host,
    dataDir,
    smtpUrl: url(env, 'SMTP_URL', ['smtp:', 'smtps:']),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    pool: {
      max: integer(env, 'DATABASE_POOL_MAX', 10, 1, 1000),
      connectionTimeoutMs: integer(env, 'DATABASE_POOL_TIMEOUT_MS', 5000, 100, 600000),
      preparedStatements: integer(env, 'DATABASE_PREPARED_STATEMENTS', DEFAULT_PREPARED_STATEMENTS, 0, 100_000),
    },
    migrationConcurrency: integer(env, 'MIGRATION_CONCURRENCY', 4, 1, 64),
    spareSchemas: integer(env, 'SPARE_SCHEMAS', 2, 0, 100),
    embeddedPostgresPort: integer(env, 'EMBEDDED_POSTGRES_PORT', 0, 0, 65535),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10000, 100, 600000),
    // Unset: this machine at the port it listens on (OpenID issuers and passkeys need the real one).
    publicUrl: url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? `http://localhost:${port || 8004}`,
    corsOrigins: corsOrigins(env),
    authRateLimitPerMinute: integer(env, 'AUTH_RATE_LIMIT_PER_MINUTE', 60, 1, 1_000_000),
    attachmentsDir: path.resolve(optional(env, 'ATTACHMENTS_DIR') ?? path.join(dataDir, 'attachments')),
    backups: {
      dir: path.resolve(optional(env, 'BACKUP_DIR') ?? path.join(dataDir, 'backups')),
      everyMs: backupSchedule(env),
      retentionDays: integer(env, 'BACKUP_RETENTION_DAYS', 14, 1, 36_500),
      maxArchiveBytes: integer(env, 'TENANT_ARCHIVE_MAX_BYTES', 10 * 1024 ** 3, 1024, Number.MAX_SAFE_INTEGER),
    },
    channelSecrets: { key: channelSecretsKey, previousKeys },
    idempotencyKey,
    trustProxy: trustProxy(env),
    http: { requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs: integer(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 5000, 100, 600_000) },
    metrics: {
      enabled: oneOf(env, 'METRICS', ['true', 'false'] as const, 'true') === 'true',
      token: metricsToken(env),
      tenantLabels: integer(env, 'METRICS_TENANT_LABELS', 0, 0, 1000),
    },
    systemToken: { issuer: claim(env, 'SYSTEM_TOKEN_ISSUER', 'auth-service'), audience: claim(env, 'SYSTEM_TOKEN_AUDIENCE', 'system-service') },
    events: {
      allowPrivateNetworks: oneOf(env, 'WEBHOOK_ALLOW_PRIVATE_NETWORKS', ['true', 'false'] as const, environment === 'production' ? 'false' : 'true') === 'true',
      pollMs: integer(env, 'EVENTS_POLL_MS', 1000, 50, 60_000),
      retentionDays: integer(env, 'EVENTS_RETENTION_DAYS', 7, 1, 3650),
      disableAfterDays: integer(env, 'WEBHOOK_DISABLE_AFTER_DAYS', 5, 1, 365),
      concurrency: integer(env, 'WEBHOOK_CONCURRENCY', 16, 1, 1000),
      timeoutMs: integer(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    },
  };
}
