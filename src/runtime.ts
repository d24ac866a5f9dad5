import type { Logger } from 'pino';
import { loadJwtKeys, type JwtKeys } from './auth/keys.js';
import type { Config } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js';
import { migratePlatform } from './db/platform.js';
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
import { TenantService } from './tenancy/service.js';

/** Everything the API and the CLI share: one database, one pool, the same services. */
export interface Runtime {
  readonly config: Config;
  readonly database: Database;
  readonly embedded: EmbeddedPostgres | undefined;
  readonly keys: JwtKeys;
  readonly schemas: SchemaManager;
  readonly tenants: TenantService;
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

/** `keepSpares`: the long-running service keeps the spare-schema pool filled; the CLI does not. */
export async function openRuntime(config: Config, logger: Logger, options: { keepSpares?: boolean } = {}): Promise<Runtime> {
  const keys = loadJwtKeys(config);
  if (keys.generatedAt) logger.debug({ file: keys.generatedAt }, 'using the development JWT key kept in DATA_DIR');
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({
        dataDir: config.dataDir,
        port: config.embeddedPostgresPort,
        log: (message) => (message.startsWith('postgres: ') ? logger.debug(message) : logger.info(message)),
      });
  const database = createDatabase({
    url: config.databaseUrl ?? embedded!.url,
    max: config.pool.max,
    connectionTimeoutMs: config.pool.connectionTimeoutMs,
    preparedStatements: config.pool.preparedStatements,
    onPoolError: (error) => logger.warn({ err: error }, 'database connection lost; it will be re-opened on next use'),
  });
  const schemas = new SchemaManager(database.db, undefined, {
    spares: options.keepSpares ? config.spareSchemas : 0,
    onSpareError: (error) => logger.warn({ err: error }, 'could not prepare a spare tenant schema'),
  });
  const cache = await openCache(config, logger);
  const started: { services?: TenantServices } = {};
  const close = async () => {
    started.services?.local.close();
    await schemas.close();
    await cache.close();
    await database.close();
    await embedded?.stop();
  };
  try {
    await migratePlatform(database.db);
  } catch (error) {
    await close();
    throw error;
  }
  const services = (started.services = await createTenantServices({
    db: database.db,
    keys,
    cache,
    mailer: createMailer({ smtpUrl: config.smtpUrl, outboxDir: path.join(config.dataDir, 'outbox') }),
    storage: new LocalDiskStorage(config.attachmentsDir),
    secrets: loadSecretBox(config),
    config,
    onCacheError: (error) => logger.warn({ err: error }, 'could not publish a cache invalidation; it is published again until it goes out'),
  }));
  const readiness: Record<string, ReadinessCheck> = { database: databaseCheck(database.db) };
  if (config.redisUrl) readiness.redis = () => cache.ping();
  return { config, database, embedded, keys, schemas, tenants: new TenantService(database.db, schemas), cache, services, readiness, close };
}
