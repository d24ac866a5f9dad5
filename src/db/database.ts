import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { PlatformDatabase } from './platform-types.js';
import type { TenantDatabase } from './types.js';

// Dates stay 'YYYY-MM-DD' strings; timestamptz parse to Date (pg's default).
const DATE_OID = 1082;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === DATE_OID) return (value: string) => value;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
  },
} as pg.CustomTypesConfig;

export interface DatabaseOptions {
  readonly url: string;
  readonly max: number;
  readonly connectionTimeoutMs: number;
  readonly applicationName?: string;
  readonly onPoolError?: (error: Error) => void;
}

export interface Database {
  /** Root handle: platform tables through `withSchema('shared')`; tenants through `tenantDb`. */
  readonly db: Kysely<PlatformDatabase>;
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** The one pool every tenant shares: connections are bounded by `max`, whatever the tenant count. */
export function createDatabase(options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'system-service',
    types: typeParsers,
  });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', (error) => options.onPoolError?.(error));
  const db = new Kysely<PlatformDatabase>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return { db, pool, close: () => (closing ??= db.destroy()) };
}

/** The only way to build a tenant query: every table it names is qualified with the schema. */
export function tenantDb(db: Kysely<PlatformDatabase>, schemaName: string): Kysely<TenantDatabase> {
  return (db as unknown as Kysely<TenantDatabase>).withSchema(schemaName);
}

export function sharedDb(db: Kysely<PlatformDatabase>): Kysely<PlatformDatabase> {
  return db.withSchema('shared');
}
