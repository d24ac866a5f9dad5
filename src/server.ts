import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openRuntime, type Runtime } from './runtime.js';
import { traceIds, tracingEnabled } from './observability/tracing.js';

async function createDemoTenant(runtime: Runtime, config: Config, logger: Logger): Promise<void> {
  if ((await runtime.tenants.count()) > 0) return;
  const password = randomBytes(12).toString('base64url');
  const email = 'admin@demo.local';
  const tenant = await runtime.tenants.create({ slug: 'demo', name: 'Demo', admin: { email, password, first_name: 'Demo', last_name: 'Admin' } });
  logger.info({ tenant: tenant.slug }, 'created the demo tenant');
  const base = `http://localhost:${config.port}`;
  process.stdout.write(
    [
      '',
      'First run: created the "demo" tenant (schema tenant_demo).',
      `  admin login     ${email} / ${password}   (shown once)`,
      `  console         ${base}/console   (tenant demo, this login)`,
      '  system token    npm run cli -- token system',
      `  tenants         curl -H "Authorization: Bearer $(npm run -s cli -- token system)" ${base}/api/v1/tenants`,
      `  API docs        ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
      '',
    ].join('\n') + '\n',
  );
}

/**
 * Tenant schemas behind this release: the embedded database (one instance, a trial or a
 * development copy) migrates them before serving; with DATABASE_URL the operator does it
 * (`tenants migrate --all`, canary and waves), and until then their new routes answer 503.
 */
async function migrateBehindSchemas(runtime: Runtime, logger: Logger): Promise<void> {
  const { pending } = await runtime.schemas.migrationSummary();
  if (pending === 0) return;
  if (!runtime.embedded) {
    logger.warn({ pending }, 'tenant schemas are behind this release: run tenants migrate --all');
    return;
  }
  const result = await runtime.schemas.migrateAll({ concurrency: 2 });
  logger.info({ migrated: result.migrated, failed: result.failed.length }, 'migrated the tenant schemas behind this release');
}

/** Loads the configuration, opens the runtime and serves until a signal; `stopTracing` flushes spans on the way out. */
export async function main(stopTracing?: () => Promise<void>): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // With tracing on, every line carries the trace and span of the work that wrote it.
  const logger = pino({ level: config.logLevel, ...(tracingEnabled() ? { mixin: traceIds } : {}) });
  let runtime: Runtime;
  try {
    runtime = await openRuntime(config, logger, { keepSpares: true, dispatchEvents: true });
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError ? '' : 'Start-up failed: '}${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }

  await migrateBehindSchemas(runtime, logger);
  const app = await buildApp({
    keys: runtime.keys,
    tenants: runtime.tenants,
    lifecycle: runtime.lifecycle,
    services: runtime.services,
    readiness: runtime.readiness,
    production: config.environment === 'production',
    logger,
    edge: { trustProxy: config.trustProxy, ...config.http },
    publicUrl: config.publicUrl,
    idempotencyKey: config.idempotencyKey,
    corsOrigins: config.corsOrigins,
    observability: config.metrics,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      await app.close(); // stops accepting, waits for in-flight requests
      await runtime.close(); // pool, then the embedded server
      await stopTracing?.();
      logger.info('stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // Run through `npm start`, a signal to npm reaches its shell, not always this process: when
  // the process that started us goes away, shut down the same way.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && void shutdown('parent exited'), 1000).unref();

  try {
    if (config.environment === 'development') await createDemoTenant(runtime, config, logger);
    await app.listen({ port: config.port, host: config.host });
    void runtime.schemas.replenishSpares();
  } catch (error) {
    process.stderr.write(`Start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await app.close().catch(() => {});
    await runtime.close().catch(() => {});
    process.exit(1);
  }
}

