import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { MemoryCache } from '../../src/cache/cache.js';
import type { Config } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { migratePlatform } from '../../src/db/platform.js';
import { tenantRoleNamer } from '../../src/db/roles.js';
import { databaseCheck } from '../../src/health/routes.js';
import { SecretBox } from '../../src/records/secrets.js';
import { LocalDiskStorage } from '../../src/records/storage.js';
import { checkRoles } from '../../src/runtime.js';
import { createTenantServices } from '../../src/services.js';
import { SchemaManager } from '../../src/tenancy/schema-manager.js';
import { TenantLifecycle } from '../../src/tenancy/lifecycle.js';
import { TenantService } from '../../src/tenancy/service.js';
import { TEST_CHANNEL_KEY, TestMailer, testKeys } from './app.js';
import { PASSWORD } from './tenants.js';
import { withDatabase } from './urls.js';

/** Runs statements as the test cluster's superuser. */
export async function asSuperuser(statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

export interface OperatorRoles {
  readonly ownerRole: string;
  readonly runtimeRole: string;
  readonly database: string;
  readonly owner: Database;
  readonly runtime: Database;
  readonly schemas: SchemaManager;
  readonly tenants: TenantService;
  readonly lifecycle: TenantLifecycle;
  readonly app: FastifyInstance;
  /** The URL of `role` (the owner's or the runtime's) on the database. */
  urlOf(role: 'owner' | 'runtime'): string;
  /** The PostgreSQL error code a statement of the runtime role fails with (or 'ok'); `before` run first on the same session. */
  runtimeTries(statement: string, before?: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * A database set up as docs/OPERATIONS.md tells an operator of a managed PostgreSQL: an owner
 * that migrates, a runtime role that answers requests (NOINHERIT), the service on them with
 * `tenants` made through the API's service, each with an admin `admin@<slug>.example`.
 * `tenantRoles`: each schema's own role (the default setting) or the runtime role's rights.
 */
export async function operatorRoles(tenantSlugs: readonly string[], options: { tenantRoles: boolean }): Promise<OperatorRoles> {
  const suffix = randomBytes(4).toString('hex');
  const ownerRole = `ss_owner_${suffix}`;
  const runtimeRole = `ss_runtime_${suffix}`;
  const database = `ss_roles_${suffix}`;
  const passwords = { owner: randomBytes(12).toString('hex'), runtime: randomBytes(12).toString('hex') };
  await asSuperuser([
    `CREATE ROLE ${ownerRole} LOGIN CREATEROLE PASSWORD '${passwords.owner}'`,
    `CREATE ROLE ${runtimeRole} LOGIN NOINHERIT PASSWORD '${passwords.runtime}'`,
    `CREATE DATABASE ${database} OWNER ${ownerRole}`,
  ]);
  const urlOf = (role: 'owner' | 'runtime') => {
    const url = new URL(withDatabase(inject('pgUrl'), database));
    url.username = role === 'owner' ? ownerRole : runtimeRole;
    url.password = passwords[role];
    return url.toString();
  };
  const tenantRole = options.tenantRoles ? tenantRoleNamer(database) : undefined;
  const owner = createDatabase({ url: urlOf('owner'), max: 3, connectionTimeoutMs: 10_000 });
  const runtime = createDatabase({ url: urlOf('runtime'), max: 5, connectionTimeoutMs: 10_000, preparedStatements: 100, ...(tenantRole ? { tenantRole } : {}) });
  const granted = await checkRoles(runtime, owner, { environment: 'production', allowSuperuser: false, tenantRoles: options.tenantRoles } as Config);
  if (granted !== runtimeRole) throw new Error(`checkRoles answered ${granted}`);
  await migratePlatform(owner.db, runtimeRole);
  const schemas = new SchemaManager(owner.db, undefined, { runtimeRole, tenantRole });
  const tenants = new TenantService(owner.db, schemas);
  for (const slug of tenantSlugs) await tenants.create({ slug, admin: { email: `admin@${slug}.example`, password: PASSWORD } });
  const files = mkdtempSync(path.join(tmpdir(), 'ss-roles-'));
  const keys = testKeys();
  const services = await createTenantServices({
    db: runtime.db,
    keys,
    cache: new MemoryCache(),
    mailer: new TestMailer(),
    storage: new LocalDiskStorage(files),
    secrets: new SecretBox([TEST_CHANNEL_KEY]),
    config: { publicUrl: 'http://app.example', authRateLimitPerMinute: 10_000 },
  });
  const lifecycle = new TenantLifecycle(owner.db, schemas, tenants, { pool: owner.pool, storage: new LocalDiskStorage(files), backups: new LocalDiskStorage(path.join(files, 'backups')), secrets: new SecretBox([TEST_CHANNEL_KEY]), changes: services.changes, maxArchiveBytes: 1024 ** 3 });
  const app = await buildApp({ keys, tenants, lifecycle, services, readiness: { database: databaseCheck(runtime.db) }, logger: false });
  return {
    ownerRole,
    runtimeRole,
    database,
    owner,
    runtime,
    schemas,
    tenants,
    lifecycle,
    app,
    urlOf,
    async runtimeTries(statement, before = []) {
      const client = new pg.Client({ connectionString: urlOf('runtime') });
      await client.connect();
      try {
        for (const s of before) await client.query(s);
        await client.query(statement);
        return 'ok';
      } catch (error) {
        return (error as { code?: string }).code ?? 'error';
      } finally {
        await client.end();
      }
    },
    async close() {
      await app.close();
      await runtime.close();
      await owner.close();
      rmSync(files, { recursive: true, force: true });
      await asSuperuser([`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
      const client = new pg.Client({ connectionString: inject('pgUrl') });
      await client.connect();
      try {
        const roles = await client.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)`, [`${database}.`]);
        for (const { rolname } of roles.rows) await client.query(`DROP ROLE ${pg.escapeIdentifier(rolname)}`);
      } finally {
        await client.end();
      }
      await asSuperuser([`DROP ROLE IF EXISTS ${runtimeRole}`, `DROP ROLE IF EXISTS ${ownerRole}`]);
    },
  };
}
