import { sql, type Kysely, type Transaction } from 'kysely';
import pg from 'pg';
import type { PlatformDatabase } from './platform-types.js';

/*
 * The service's two database roles (docs/OPERATIONS.md, "Database roles"): the owner runs
 * migrations and owns every schema and table; the runtime role answers requests with rows
 * only: read and write the tenant tables, only read and append `audit_logs`, only read the
 * tenant registry in `shared`. It cannot change a table, disable a trigger, create a schema
 * or read another role's password.
 */

/** The roles the embedded database creates (an operator names their own on a managed one). */
export const EMBEDDED_ROLES = { owner: 'system_service_owner', runtime: 'system_service' } as const;

/** Who a connection is, and whether it could bypass every check. */
export async function whoAmI(db: Kysely<PlatformDatabase>): Promise<{ name: string; superuser: boolean }> {
  const r = await sql<{ name: string; superuser: boolean }>`SELECT current_user AS name, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user`.execute(db);
  return r.rows[0]!;
}

/** The runtime role's rights on one tenant schema, granted by its owner after each migration. */
export async function grantTenantSchema(trx: Transaction<PlatformDatabase>, schema: string, runtime: string): Promise<void> {
  await sql`GRANT USAGE ON SCHEMA ${sql.id(schema)} TO ${sql.id(runtime)}`.execute(trx);
  await sql`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${sql.id(schema)} TO ${sql.id(runtime)}`.execute(trx);
  // The audit trail is append-only for the service: rows are read and added, never changed.
  await sql`REVOKE UPDATE, DELETE, TRUNCATE ON ${sql.id(schema, 'audit_logs')} FROM ${sql.id(runtime)}`.execute(trx);
}

/** The runtime role's rights on the platform schema: it reads the tenant registry. */
export async function grantPlatform(trx: Transaction<PlatformDatabase>, runtime: string): Promise<void> {
  await sql`GRANT USAGE ON SCHEMA shared TO ${sql.id(runtime)}`.execute(trx);
  await sql`GRANT SELECT ON ALL TABLES IN SCHEMA shared TO ${sql.id(runtime)}`.execute(trx);
}

/**
 * On the embedded cluster, as its superuser: creates the owner and runtime roles when absent
 * (passwords from DATA_DIR), makes the owner own the database, and hands it the service's
 * schemas a cluster made before these roles existed still has under the superuser.
 */
export async function ensureEmbeddedRoles(superuserUrl: string, passwords: { owner: string; runtime: string }): Promise<void> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    const { owner, runtime } = EMBEDDED_ROLES;
    const existing = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [[owner, runtime]])).rows.map((r) => r.rolname));
    const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;
    // CREATEROLE: the owner manages the tenants' own roles. Neither role is a superuser.
    if (!existing.has(owner)) await client.query(`CREATE ROLE ${owner} LOGIN CREATEROLE PASSWORD ${quote(passwords.owner)}`);
    if (!existing.has(runtime)) await client.query(`CREATE ROLE ${runtime} LOGIN PASSWORD ${quote(passwords.runtime)}`);
    const database = (await client.query<{ db: string; owner: string }>('SELECT current_database() AS db, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()')).rows[0]!;
    if (database.owner !== owner) await client.query(`ALTER DATABASE ${pg.escapeIdentifier(database.db)} OWNER TO ${owner}`);
    await adoptSchemas(client, owner);
  } finally {
    await client.end();
  }
}

/** Gives the owner the service's schemas (and everything in them) still owned by another role. */
async function adoptSchemas(client: pg.Client, owner: string): Promise<void> {
  const schemas = await client.query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace
     WHERE (nspname IN ('shared', 'tenant_template') OR nspname LIKE 'tenant\\_%' OR nspname LIKE 'spare\\_%')
       AND pg_get_userbyid(nspowner) <> $1`,
    [owner],
  );
  for (const { nspname } of schemas.rows) {
    const schema = pg.escapeIdentifier(nspname);
    await client.query(`ALTER SCHEMA ${schema} OWNER TO ${owner}`);
    const objects = await client.query<{ kind: string; name: string }>(
      `SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END AS kind, c.relname AS name
       FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v') AND pg_get_userbyid(c.relowner) <> $2`,
      [nspname, owner],
    );
    for (const o of objects.rows) await client.query(`ALTER ${o.kind} ${schema}.${pg.escapeIdentifier(o.name)} OWNER TO ${owner}`);
    const functions = await client.query<{ signature: string }>(
      `SELECT p.oid::regprocedure::text AS signature FROM pg_proc p WHERE p.pronamespace = $1::regnamespace AND pg_get_userbyid(p.proowner) <> $2`,
      [nspname, owner],
    );
    for (const f of functions.rows) await client.query(`ALTER FUNCTION ${f.signature} OWNER TO ${owner}`);
  }
}
