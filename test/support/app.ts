import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import type { Kysely } from 'kysely';
import { buildApp, type AppDeps } from '../../src/app.js';
import type { JwtKeys } from '../../src/auth/keys.js';
import { issueSystemToken } from '../../src/auth/system-token.js';
import { MemoryCache, type Cache } from '../../src/cache/cache.js';
import { poolOf } from '../../src/db/database.js';
import type { PlatformDatabase } from '../../src/db/platform-types.js';
import { databaseCheck } from '../../src/health/routes.js';
import type { Mailer, MailMessage } from '../../src/mail/mailer.js';
import { SecretBox } from '../../src/records/secrets.js';
import { LocalDiskStorage } from '../../src/records/storage.js';
import { createTenantServices, type TenantServices, type TenantServicesConfig } from '../../src/services.js';
import { SchemaManager } from '../../src/tenancy/schema-manager.js';
import { TenantLifecycle } from '../../src/tenancy/lifecycle.js';
import { TenantService } from '../../src/tenancy/service.js';
import { createTestDatabase, type TestDatabase } from './db.js';

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export function testKeys(secret = TEST_SECRET): JwtKeys {
  const key = new TextEncoder().encode(secret);
  return { algorithm: 'HS256', signingKey: key, verificationKey: key };
}

/** Keeps sent mail in memory for assertions. */
export class TestMailer implements Mailer {
  readonly sent: MailMessage[] = [];
  async send(message: MailMessage): Promise<void> {
    this.sent.push(message);
  }
}

export interface TestAppOptions {
  /** Build the app as in production (no GraphiQL, no GraphQL introspection). */
  readonly production?: boolean;
  readonly cache?: Cache;
  readonly authRateLimitPerMinute?: number;
  readonly keys?: JwtKeys;
  /** Use this database instead of a fresh clone (a second instance on the same data). */
  readonly database?: TestDatabase;
  /** Where attachment bytes go (default: a fresh temporary directory). */
  readonly attachmentsDir?: string;
  /** Where backups go (default: a fresh temporary directory). */
  readonly backupsDir?: string;
  readonly secrets?: SecretBox;
  /** The app's logger (default: none). */
  readonly logger?: AppDeps['logger'];
  /** Events and webhooks settings (short polls and retries in tests); `dispatch` starts the dispatcher, stopped with the app. */
  readonly events?: TenantServicesConfig['events'] & { dispatch?: boolean };
  /** Realtime settings (feed, heartbeat, buffer limit). */
  readonly realtime?: TenantServicesConfig['realtime'];
  /** /metrics settings (token, tenant labels). */
  readonly observability?: AppDeps['observability'];
  /** CORS_ORIGINS (default: none, no CORS headers). */
  readonly corsOrigins?: AppDeps['corsOrigins'];
  /** PUBLIC_URL (default `http://app.example`): links in mails, the OpenID issuers, the passkeys' relying party. */
  readonly publicUrl?: string;
}

/** The channel-secrets key of test instances. */
export const TEST_CHANNEL_KEY = Buffer.alloc(32, 7);

/** Environment for the service run as a child process (src/main.ts) against a test database. */
export function childServiceEnv(databaseUrl: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    DATABASE_URL: databaseUrl,
    JWT_SECRET_KEY: TEST_SECRET,
    CHANNEL_SECRETS_KEY: TEST_CHANNEL_KEY.toString('hex'),
    ENVIRONMENT: 'development',
    SERVICE_PORT: '0',
    SERVICE_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    SPARE_SCHEMAS: '0',
    REDIS_URL: undefined,
    ...extra,
  };
}

export interface TestApp {
  readonly app: FastifyInstance;
  readonly db: TestDatabase;
  readonly keys: JwtKeys;
  readonly tenants: TenantService;
  readonly lifecycle: TenantLifecycle;
  readonly schemas: SchemaManager;
  readonly services: TenantServices;
  readonly mailer: TestMailer;
  readonly attachmentsDir: string;
  readonly backupsDir: string;
  systemToken(): Promise<string>;
  close(): Promise<void>;
}

/** Builds the real app over `db` (an instance of the service, without listening). */
export async function buildTestApp(db: Kysely<PlatformDatabase>, options: TestAppOptions = {}) {
  const keys = options.keys ?? testKeys();
  const schemas = new SchemaManager(db);
  const tenants = new TenantService(db, schemas);
  const mailer = new TestMailer();
  const attachmentsDir = options.attachmentsDir ?? mkdtempSync(path.join(tmpdir(), 'system-service-files-'));
  const storage = new LocalDiskStorage(attachmentsDir);
  const secrets = options.secrets ?? new SecretBox([TEST_CHANNEL_KEY]);
  const services = await createTenantServices({
    db,
    keys,
    cache: options.cache ?? new MemoryCache(),
    mailer,
    storage,
    secrets,
    onDispatchError: (error) => console.error('dispatch error', error),
    config: { publicUrl: options.publicUrl ?? 'http://app.example', authRateLimitPerMinute: options.authRateLimitPerMinute ?? 10_000, ...(options.events ? { events: options.events } : {}), ...(options.realtime ? { realtime: options.realtime } : {}) },
  });
  if (options.events?.dispatch) services.dispatcher.start();
  const backupsDir = options.backupsDir ?? mkdtempSync(path.join(tmpdir(), 'system-service-backups-'));
  const lifecycle = new TenantLifecycle(db, schemas, tenants, { pool: poolOf(db), storage, backups: new LocalDiskStorage(backupsDir), secrets, changes: services.changes, maxArchiveBytes: 1024 ** 3 });
  const app = await buildApp({ keys, tenants, lifecycle, services, readiness: { database: databaseCheck(db) }, logger: options.logger ?? false, production: options.production ?? false, observability: options.observability, corsOrigins: options.corsOrigins, ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}) });
  app.addHook('onClose', () => services.dispatcher.stop());
  // A directory made here goes with the app.
  if (!options.attachmentsDir) app.addHook('onClose', async () => rmSync(attachmentsDir, { recursive: true, force: true }));
  if (!options.backupsDir) app.addHook('onClose', async () => rmSync(backupsDir, { recursive: true, force: true }));
  return { app, keys, schemas, tenants, lifecycle, services, mailer, attachmentsDir, backupsDir };
}

/** The real app on its own cloned database. */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.database ?? (await createTestDatabase());
  const built = await buildTestApp(db.database.db, options);
  return {
    ...built,
    db,
    systemToken: () => issueSystemToken(built.keys, { subject: 'test', ttlSeconds: 300 }),
    close: async () => {
      await built.app.close();
      if (!options.database) await db.drop();
    },
  };
}

/** Signs arbitrary claims (and header) with the test secret, for token-rejection tests. */
export function signWith(claims: Record<string, unknown>, options: { secret?: string; alg?: string; exp?: number | null } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'HS256' }).setIssuedAt();
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}
