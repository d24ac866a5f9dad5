import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { PlatformDatabase } from './platform-types.js';
import { grantPlatform } from './roles.js';

/** Advisory-lock class ids of this service (first key of the two-key lock functions). */
export const LOCK_CLASS = { platform: 7_340_001, tenantSchema: 7_340_002, spares: 7_340_003, teamHierarchy: 7_340_004, channelDefault: 7_340_005, attachmentQuota: 7_340_006, eventDispatch: 7_340_007, tenantBackup: 7_340_008 } as const;

interface PlatformMigration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

/**
 * Our own tables in `shared`. `shared.tenants` belongs to tenant-service: created here only
 * when absent, with the columns we read. Applied under an advisory lock, so instances
 * starting together do not race.
 */
const platformMigrations: readonly PlatformMigration[] = [
  {
    version: 1,
    name: 'tenant_registry_and_schema_state',
    statements: [
      `CREATE TABLE IF NOT EXISTS shared.tenants (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        slug text NOT NULL UNIQUE,
        name text NOT NULL,
        schema_name text NOT NULL UNIQUE,
        status text NOT NULL DEFAULT 'active',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE shared.tenant_schemas (
        schema_name text PRIMARY KEY,
        tenant_id uuid UNIQUE,
        version integer NOT NULL DEFAULT 0 CHECK (version >= 0),
        status text NOT NULL CHECK (status IN ('initializing', 'ready', 'failed')),
        started_at timestamptz,
        finished_at timestamptz,
        last_duration_ms integer,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX tenant_schemas_status_version_idx ON shared.tenant_schemas (status, version)`,
    ],
  },
  {
    version: 2,
    name: 'spare_schemas',
    statements: [
      `ALTER TABLE shared.tenant_schemas ADD COLUMN is_spare boolean NOT NULL DEFAULT false`,
      `CREATE INDEX tenant_schemas_spare_idx ON shared.tenant_schemas (created_at) WHERE is_spare`,
    ],
  },
  {
    version: 3,
    name: 'event_signals',
    // A row per tenant transaction that wrote events, or per later time a tenant's deliveries
    // are due: where every instance's dispatcher looks for work (events/dispatcher.ts).
    statements: [
      `CREATE TABLE shared.event_signals (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        schema_name text NOT NULL,
        due_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX event_signals_due_idx ON shared.event_signals (due_at)`,
    ],
  },
  {
    version: 4,
    name: 'tenant_backups',
    // A row per backup archive in the backup store; kept after its tenant is deleted (the final backup).
    statements: [
      `CREATE TABLE shared.tenant_backups (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        tenant_id uuid NOT NULL,
        tenant_slug text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('manual', 'scheduled', 'final')),
        storage_key text NOT NULL,
        size_bytes bigint NOT NULL,
        sha256 text NOT NULL,
        schema_version integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX tenant_backups_tenant_idx ON shared.tenant_backups (tenant_id, created_at DESC)`,
    ],
  },
  {
    version: 5,
    name: 'pg_trgm',
    // Trigram similarity for search (docs/SEARCH.md), once per database, in `shared`: tenant
    // indexes and queries name its operators there (`shared.gin_trgm_ops`, `OPERATOR(shared.%)`).
    // A trusted extension: the owner creates it with CREATE on the database, no superuser.
    statements: [`CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA shared`],
  },
];

/** Extensions the tenant schemas name in `shared`: one created elsewhere beforehand would leave those names dangling. */
async function checkExtensionSchemas(trx: Transaction<PlatformDatabase>): Promise<void> {
  const r = await sql<{ schema: string }>`SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'`.execute(trx);
  const schema = r.rows[0]?.schema;
  if (schema !== 'shared') {
    throw new Error(`pg_trgm is ${schema ? `installed in schema "${schema}"` : 'not installed'}; search needs it in "shared": run ALTER EXTENSION pg_trgm SET SCHEMA shared (or CREATE EXTENSION pg_trgm WITH SCHEMA shared) as its owner`);
  }
}

const templateSqlFile = fileURLToPath(new URL('./sql/tenant_template.sql', import.meta.url));

/** Splits our own SQL file into statements (";" at a line end), dropping comment lines. */
export function splitSqlStatements(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** What one statement of the template creates, to look for in the catalogue before sending it. */
export function templateObject(statement: string): { kind: 'schema' | 'relation'; name: string } {
  const schema = /^CREATE SCHEMA IF NOT EXISTS (\w+)$/i.exec(statement);
  if (schema) return { kind: 'schema', name: schema[1]! };
  const table = /^CREATE TABLE IF NOT EXISTS (\w+\.\w+)\s*\(/i.exec(statement);
  if (table) return { kind: 'relation', name: table[1]! };
  const index = /^CREATE INDEX IF NOT EXISTS (\w+) ON (\w+)\.\w+\s/i.exec(statement);
  if (index) return { kind: 'relation', name: `${index[2]}.${index[1]}` };
  throw new Error(`the tenant template holds a statement whose object cannot be looked up: ${statement.slice(0, 80)}`);
}

/** True when the catalogue holds the schema or relation (table, index) of that name. */
async function present(trx: Transaction<PlatformDatabase>, object: { kind: 'schema' | 'relation'; name: string }): Promise<boolean> {
  const r =
    object.kind === 'schema'
      ? await sql<{ found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${object.name}) AS found`.execute(trx)
      : await sql<{ found: boolean }>`SELECT to_regclass(${object.name}) IS NOT NULL AS found`.execute(trx);
  return r.rows[0]?.found ?? false;
}

/** pg_trgm's functions that compare two texts, as search's statements call them (directly and as operators). */
const TRIGRAM_FUNCTIONS = ['similarity', 'similarity_op', 'word_similarity', 'word_similarity_op', 'word_similarity_commutator_op'];
const TRIGRAM_COST = 100;

/**
 * pg_trgm declares its similarity functions as cheap as an equality (cost 1), while one costs
 * 2-10 us a row: declared nearer their cost, the planner does not take reading a tenant's table
 * whole for cheaper than its trigram index (it did, after a mass update had doubled a table).
 * Only functions this role may change (an extension another role made keeps its costs).
 */
async function costTrigramFunctions(trx: Transaction<PlatformDatabase>): Promise<void> {
  const cheap = await sql<{ fn: string }>`
    SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
    WHERE p.pronamespace = 'shared'::regnamespace AND p.proname = ANY(${TRIGRAM_FUNCTIONS}::text[]) AND p.procost < ${TRIGRAM_COST}
      AND pg_has_role(current_user, p.proowner, 'USAGE')`.execute(trx);
  for (const { fn } of cheap.rows) await sql.raw(`ALTER FUNCTION ${fn} COST ${TRIGRAM_COST}`).execute(trx);
}

/** Sends only the template statements whose objects are missing. */
async function applyTemplate(trx: Transaction<PlatformDatabase>): Promise<void> {
  for (const statement of splitSqlStatements(await readFile(templateSqlFile, 'utf8'))) {
    if (!(await present(trx, templateObject(statement)))) await sql.raw(statement).execute(trx);
  }
}

/**
 * Brings `shared` and `tenant_template` up to date; safe to call from every instance at start.
 * `runtimeRole`: the role requests run as, when it is not this connection's (it may read `shared`).
 */
export async function migratePlatform(db: Kysely<PlatformDatabase>, runtimeRole?: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.platform}, 0)`.execute(trx);
    // On Citus with schema-based sharding, `shared` and `tenant_template` stay regular schemas
    // of the coordinator (a placeholder setting, without effect, on plain PostgreSQL).
    await sql`SET LOCAL citus.enable_schema_based_sharding TO off`.execute(trx);
    // Created only when absent, as the catalogue says: DDL re-sent at every start would make
    // Citus take `shared` for a tenant schema after the fact.
    if (!(await present(trx, { kind: 'schema', name: 'shared' }))) await sql`CREATE SCHEMA shared`.execute(trx);
    if (!(await present(trx, { kind: 'relation', name: 'shared.platform_migrations' }))) {
      await sql`CREATE TABLE shared.platform_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`.execute(trx);
    }
    const applied = new Set(
      (await trx.withSchema('shared').selectFrom('platform_migrations').select('version').execute()).map((r) => r.version),
    );
    for (const migration of platformMigrations) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await sql.raw(statement).execute(trx);
      await trx.withSchema('shared').insertInto('platform_migrations').values({ version: migration.version, name: migration.name }).execute();
    }
    await checkExtensionSchemas(trx);
    await costTrigramFunctions(trx);
    await applyTemplate(trx);
    if (runtimeRole) await grantPlatform(trx, runtimeRole);
  });
}
