import { sql, type CompiledQuery, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { tenantColumns } from '../db/columns.js';
import { checkSchemaName } from '../db/identifiers.js';
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
export async function ownTables(db: Kysely<PlatformDatabase>, schema: string, alsoNamed: readonly string[] = []): Promise<string[]> {
  const result = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c
    WHERE c.relname = ANY(${alsoNamed.length > 0 ? [...TENANT_TABLES, ...alsoNamed] : TENANT_TABLES}::text[])
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

/** The tables `CREATE TABLE` statements among `statements` make (a migration may add one the types do not know yet). */
export function createdTables(statements: readonly CompiledQuery[]): string[] {
  return statements.flatMap((s) => {
    const match = /^\s*create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?(?:"(?:[^"]|"")+"\.)?"((?:[^"]|"")+)"/i.exec(s.sql);
    return match ? [match[1]!.replace(/""/g, '"')] : [];
  });
}

/**
 * `statements` split for a bulk load between them: the plain (not unique) `CREATE INDEX`es that
 * no later statement names go `after` the load, built once over its rows instead of row by row;
 * unique indexes stay before it, so duplicate data fails at its row.
 */
export function indexesAfterLoad(statements: readonly CompiledQuery[]): { before: CompiledQuery[]; after: CompiledQuery[] } {
  const before: CompiledQuery[] = [];
  const after: CompiledQuery[] = [];
  statements.forEach((s, i) => {
    const name = /^\s*create\s+index\s+(?:if\s+not\s+exists\s+)?("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+on\s/i.exec(s.sql)?.[1];
    const named = name !== undefined && statements.slice(i + 1).some((later) => later.sql.includes(name.replace(/^"|"$/g, '')));
    (name !== undefined && !named ? after : before).push(s);
  });
  return { before, after };
}

/**
 * Runs DDL statements one by one, each a top-level statement of its own: never inside a `DO`
 * block and never several in one string, so Citus (schema-based sharding) sees every
 * `CREATE TABLE` of a tenant schema and makes it a table of the schema's colocation group.
 */
export async function executeBatch(trx: Transaction<PlatformDatabase>, statements: readonly CompiledQuery[]): Promise<void> {
  for (const s of statements) checkTopLevelDdl(s);
  for (const s of statements) await sql.raw(s.sql).execute(trx);
}

/** Refuses a migration statement Citus would not see as DDL of its own (or that binds parameters). */
export function checkTopLevelDdl(statement: CompiledQuery): void {
  if (statement.parameters.length > 0) throw new Error(`migration statement has bound parameters (use sql.lit for constants): ${statement.sql}`);
  if (/^\s*do\b/i.test(statement.sql)) throw new Error(`migration statement is a DO block (send each statement on its own): ${statement.sql}`);
  const count = statementCount(statement.sql);
  if (count !== 1) throw new Error(`migration statement holds ${count} statements (send each on its own): ${statement.sql}`);
}

/**
 * How many statements a SQL text holds: semicolons outside quotes, identifiers, comments and
 * dollar-quoted bodies separate them (a trailing one ends the last).
 */
export function statementCount(text: string): number {
  let count = 0;
  let pending = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      i = end < 0 ? text.length : end;
      pending = true;
    } else if (c === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(text.slice(i));
      if (tag) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? text.length : end + tag[0].length - 1;
      }
      pending = true;
    } else if (c === ';') {
      if (pending) count++;
      pending = false;
    } else if (!/\s/.test(c)) pending = true;
  }
  return count + (pending ? 1 : 0);
}
