import type { Logger } from 'pino';
import { loadJwtKeys, type JwtKeys } from './auth/keys.js';
import { ConfigError, type Config } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js';
import { migratePlatform } from './db/platform.js';
import { currentDatabase, inheritsRights, tenantRoleNamer, whoAmI } from './db/roles.js';
import path from 'node:path';
import type { Cache } from './cache/cache.js';
import { MemoryCache } from './cache/cache.js';
import { RedisCache } from './cache/redis.js';
import { databaseCheck, type ReadinessCheck } from './health/routes.js';
import { createMailer } from './mail/mailer.js';
import { loadSecretBox } from './records/secrets.js';
import { LocalDiskStorage } from './records/storage.js';
import { createTenantServices, type TenantServices } from './services.js';
import { SchemaManager } from './tenancy/schema-manager.js';
import { BackupScheduler } from './tenancy/backup-scheduler.js';
import { TenantLifecycle } from './tenancy/lifecycle.js';
import { TenantService } from './tenancy/service.js';

/** Everything the API and the CLI share: one database, one pool, the same services. */
export interface Runtime {
  readonly config: Config;
  /** The runtime role's pool: every request. */
  readonly database: Database;
  /** The owner's pool: migrations, provisioning, the tenant registry (the runtime pool when one role does both). */
  readonly owner: Database;
  readonly embedded: EmbeddedPostgres | undefined;
  readonly keys: JwtKeys;
  readonly schemas: SchemaManager;
  readonly tenants: TenantService;
  /** Export, import, fork, backups, suspension and deletion of whole tenants. */
  readonly lifecycle: TenantLifecycle;
  readonly cache: Cache;
  readonly services: TenantServices;
  readonly readiness: Record<string, ReadinessCheck>;
  close(): Promise<void>;
}

async function openCache(config: Config, logger: Logger): Promise<Cache> {
  if (!config.redisUrl) return new MemoryCache();
  let lastLogged = 0;
  const redis = new RedisCache({
    url: config.redisUrl,
    onError: (error) => {
      // Reconnection is automatic; say so once in a while, not on every retry.
      if (Date.now() - lastLogged > 30_000) logger.warn({ err: error }, 'redis unavailable: answering from PostgreSQL');
      lastLogged = Date.now();
    },
  });
  await redis.connect();
  return redis;
}

/**
 * Who the two pools are: refuses a superuser runtime role in production (unless
 * DATABASE_ALLOW_SUPERUSER=true) and returns the runtime role when it is not the owner.
 */
export async function checkRoles(database: Database, owner: Database, config: Config): Promise<string | undefined> {
  const runtime = await whoAmI(database.db);
  if (runtime.superuser && config.environment === 'production' && !config.allowSuperuser) {
    throw new ConfigError(
      'DATABASE_URL',
      `connects as "${runtime.name}", a superuser: give the service a runtime role (docs/OPERATIONS.md, "Database roles") or set DATABASE_ALLOW_SUPERUSER=true`,
    );
  }
  if (owner === database) return undefined;
  const ownerRole = await whoAmI(owner.db);
  if (ownerRole.name === runtime.name) return undefined;
  // A runtime role that inherits the tenants' roles holds every tenant's rights at once.
  if (config.tenantRoles && !runtime.superuser && (await inheritsRights(owner.db, runtime.name))) {
    throw new ConfigError(
      'DATABASE_URL',
      `connects as "${runtime.name}", which inherits the rights of roles granted to it: run ALTER ROLE ${runtime.name} NOINHERIT (docs/OPERATIONS.md, "Per-tenant roles") or set DATABASE_TENANT_ROLES=false`,
    );
  }
  return runtime.name;
}

/** `keepSpares`, `dispatchEvents`: the long-running service keeps the spare-schema pool filled, delivers events and runs scheduled backups; the CLI does none of it. */
export async function openRuntime(config: Config, logger: Logger, options: { keepSpares?: boolean; dispatchEvents?: boolean } = {}): Promise<Runtime> {
  const keys = loadJwtKeys(config);
  if (keys.generatedAt) logger.debug({ file: keys.generatedAt }, 'using the development JWT key kept in DATA_DIR');
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({
        dataDir: config.dataDir,
        port: config.embeddedPostgresPort,
        log: (message) => (message.startsWith('postgres: ') ? logger.debug(message) : logger.info(message)),
      });
  let stopping = false;
  const onPoolError = (error: Error) => {
    // While stopping, the embedded server ends connections a closing pool has let go of but not yet seen close: expected.
    if (stopping && (error as { code?: string }).code === '57P01') return logger.debug({ err: error }, 'database connection ended by the server\'s shutdown');
    logger.warn({ err: error }, 'database connection lost; it will be re-opened on next use');
  };
  // Requests run as the runtime role; migrations and provisioning as the owner (the same
  // role when only DATABASE_URL is given). Tenant roles are named once the database is known.
  let tenantRole: ((schema: string) => string) | undefined;
  const database = createDatabase({
    url: config.databaseUrl ?? embedded!.runtimeUrl,
    max: config.pool.max,
    connectionTimeoutMs: config.pool.connectionTimeoutMs,
    preparedStatements: config.pool.preparedStatements,
    onPoolError,
    onWarning: (message) => logger.warn(message),
    ...(config.tenantRoles ? { tenantRole: (schema: string) => tenantRole!(schema) } : {}),
  });
  const ownerUrl = config.databaseOwnerUrl ?? (config.databaseUrl ? undefined : embedded!.ownerUrl);
  const owner = ownerUrl
    ? createDatabase({ url: ownerUrl, max: config.migrationConcurrency + 1, connectionTimeoutMs: config.pool.connectionTimeoutMs, applicationName: 'system-service-owner', onPoolError })
    : database;
  let schemas: SchemaManager | undefined;
  const cache = await openCache(config, logger);
  const started: { services?: TenantServices; backups?: BackupScheduler } = {};
  const close = async () => {
    stopping = true;
    await started.backups?.stop();
    await started.services?.dispatcher.stop();
    started.services?.local.close();
    await schemas?.close();
    await cache.close();
    await database.close();
    if (owner !== database) await owner.close();
    await embedded?.stop();
  };
  try {
    const runtimeRole = await checkRoles(database, owner, config);
    if (config.tenantRoles) tenantRole = tenantRoleNamer(await currentDatabase(owner.db));
    schemas = new SchemaManager(owner.db, undefined, {
      spares: options.keepSpares ? config.spareSchemas : 0,
      onSpareError: (error) => logger.warn({ err: error }, 'could not prepare a spare tenant schema'),
      runtimeRole,
      tenantRole,
    });
    await migratePlatform(owner.db, runtimeRole);
    const granted = await schemas.grantRuntimeWhereMissing();
    if (granted) logger.info({ schemas: granted, role: runtimeRole, tenantRoles: config.tenantRoles }, 'granted the rights requests need on existing tenant schemas');
  } catch (error) {
    await close();
    throw error;
  }
  const storage = new LocalDiskStorage(config.attachmentsDir);
  const secrets = loadSecretBox(config);
  const services = (started.services = await createTenantServices({
    db: database.db,
    keys,
    cache,
    mailer: createMailer({ smtpUrl: config.smtpUrl, outboxDir: path.join(config.dataDir, 'outbox') }),
    storage,
    secrets,
    // Behind Redis every instance hears the dispatcher's events; without it each reads the outboxes.
    config: { ...config, realtime: { feed: config.redisUrl ? 'pubsub' : 'outbox' } },
    onCacheError: (error) => logger.warn({ err: error }, 'could not publish a cache invalidation; it is published again until it goes out'),
    onDispatchError: (error) => logger.warn({ err: error }, 'event dispatch failed; it is tried again'),
  }));
  if (options.dispatchEvents) services.dispatcher.start();
  const readiness: Record<string, ReadinessCheck> = { database: databaseCheck(database.db) };
  if (config.redisUrl) readiness.redis = () => cache.ping();
  const tenants = new TenantService(owner.db, schemas);
  const lifecycle = new TenantLifecycle(owner.db, schemas, tenants, {
    pool: owner.pool,
    storage,
    backups: new LocalDiskStorage(config.backups.dir),
    secrets,
    changes: services.changes,
    maxArchiveBytes: config.backups.maxArchiveBytes,
  });
  if (options.keepSpares && config.backups.everyMs !== null) {
    started.backups = new BackupScheduler(owner.db, lifecycle, {
      everyMs: config.backups.everyMs,
      retentionDays: config.backups.retentionDays,
      onError: (error, tenant) => logger.warn({ err: error, tenant }, 'scheduled backup failed; it is tried again next pass'),
    });
    started.backups.start();
  }
  return { config, database, owner, embedded, keys, schemas, tenants, lifecycle, cache, services, readiness, close };
}
