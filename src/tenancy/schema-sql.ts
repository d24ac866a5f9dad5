import { sql, type CompiledQuery, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { tenantColumns } from '../db/columns.js';
import { checkSchemaName, quoteLiteral } from '../db/identifiers.js';
import type { MigrationStatement, TenantMigration } from '../db/migrations/migration.js';
import { LOCK_CLASS } from '../db/platform.js';
import type { PlatformDatabase } from '../db/platform-types.js';

/* What the schema manager asks PostgreSQL's catalogue and how it sends DDL: one statement at a time, never in DO blocks. */

export function isValidSchemaName(name: string): boolean {
  try {
    checkSchemaName(name);
    return true;
  } catch {
    return false;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function lockSchema(trx: Transaction<PlatformDatabase>, schema: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.tenantSchema}, hashtext(${schema}))`.execute(trx);
}

export async function exactCount(db: Kysely<PlatformDatabase>, schema: string, table: string): Promise<number> {
  const r = await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id(schema, table)}`.execute(db);
  return Number(r.rows[0]?.n ?? 0);
}

export async function schemaExists(db: Kysely<PlatformDatabase>, schema: string): Promise<boolean> {
  const r = await sql<{ found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${schema}) AS found`.execute(db);
  return r.rows[0]?.found ?? false;
}

/** Every table a tenant schema is meant to hold (the migrations' and the template's). */
const TENANT_TABLES = Object.keys(tenantColumns);

/**
 * Which of our tables a schema holds, found through pg_class's (relname, relnamespace) index:
 * with thousands of tenants pg_class has hundreds of thousands of rows, and scanning it per
 * tenant is what made migrating them all slow.
 */
export async function ownTables(db: Kysely<PlatformDatabase>, schema: string): Promise<string[]> {
  const result = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c
    WHERE c.relname = ANY(${TENANT_TABLES}::text[])
      AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = ${schema})
      AND c.relkind IN ('r', 'p')
    ORDER BY c.relname`.execute(db);
  return result.rows.map((r) => r.name);
}

export async function listTables(db: Kysely<PlatformDatabase>, schema: string): Promise<string[]> {
  const result = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'p') ORDER BY c.relname`.execute(db);
  return result.rows.map((r) => r.name);
}

export function compileMigration(db: Kysely<PlatformDatabase>, migration: TenantMigration, schemaName: string): CompiledQuery[] {
  const statements: MigrationStatement[] = migration.statements({ schema: db.schema.withSchema(schemaName), schemaName });
  // Query builders ignore the executor argument; raw fragments need it to compile.
  return statements.map((s) => (s as RawBuilder<unknown>).compile(db));
}

/**
 * Runs DDL statements in one round trip: a PL/pgSQL block that EXECUTEs each one in turn.
 * Each statement still runs on its own (never one multi-statement string), which keeps
 * the schema compatible with Citus schema-based sharding.
 */
export async function executeBatch(trx: Transaction<PlatformDatabase>, statements: readonly CompiledQuery[]): Promise<void> {
  if (statements.length === 0) return;
  for (const s of statements) {
    if (s.parameters.length > 0) {
      throw new Error(`migration statement has bound parameters (use sql.lit for constants): ${s.sql}`);
    }
  }
  const body = statements.map((s) => `EXECUTE ${quoteLiteral(s.sql)};`).join('\n');
  await sql.raw(`DO $migrate$\nBEGIN\n${body}\nEND\n$migrate$`).execute(trx);
}
