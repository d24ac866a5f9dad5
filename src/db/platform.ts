import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { PlatformDatabase } from './platform-types.js';

/** Advisory-lock class ids of this service (first key of the two-key lock functions). */
export const LOCK_CLASS = { platform: 7_340_001, tenantSchema: 7_340_002, spares: 7_340_003, teamHierarchy: 7_340_004, channelDefault: 7_340_005, attachmentQuota: 7_340_006 } as const;

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
];

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

async function applyTemplate(trx: Transaction<PlatformDatabase>): Promise<void> {
  for (const statement of splitSqlStatements(await readFile(templateSqlFile, 'utf8'))) {
    await sql.raw(statement).execute(trx);
  }
}

/** Brings `shared` and `tenant_template` up to date; safe to call from every instance at start. */
export async function migratePlatform(db: Kysely<PlatformDatabase>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.platform}, 0)`.execute(trx);
    await sql`CREATE SCHEMA IF NOT EXISTS shared`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS shared.platform_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`.execute(trx);
    const applied = new Set(
      (await trx.withSchema('shared').selectFrom('platform_migrations').select('version').execute()).map((r) => r.version),
    );
    for (const migration of platformMigrations) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await sql.raw(statement).execute(trx);
      await trx.withSchema('shared').insertInto('platform_migrations').values({ version: migration.version, name: migration.name }).execute();
    }
    await applyTemplate(trx);
  });
}
