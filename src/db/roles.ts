import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import pg from 'pg';
import type { PlatformDatabase } from './platform-types.js';
import { LOCK_CLASS } from './platform.js';

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

/**
 * The rights requests need on one tenant schema and its `tables`, granted by its owner after
 * each migration. Tables are named, not `ALL TABLES IN SCHEMA`: that form scans all of
 * pg_class, which grows with every tenant.
 */
export async function grantTenantSchema(trx: Transaction<PlatformDatabase>, schema: string, tables: readonly string[], grantee: string, created?: readonly string[]): Promise<void> {
  // Rights granted by an earlier migration stay (a new column is covered by its table's grant):
  // only new tables need any; re-granting would rewrite each table's catalogue row.
  if (created && (await holdsSchema(trx, schema, grantee))) tables = created;
  else await sql`GRANT USAGE ON SCHEMA ${sql.id(schema)} TO ${sql.id(grantee)}`.execute(trx);
  if (tables.length === 0) return;
  await sql`GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ${listed(schema, tables)} TO ${sql.id(grantee)}`.execute(trx);
  // The audit trail is append-only for the service: rows are read and added, never changed.
  if (tables.includes('audit_logs')) await sql`REVOKE UPDATE, DELETE, TRUNCATE ON ${sql.id(schema, 'audit_logs')} FROM ${sql.id(grantee)}`.execute(trx);
}

const listed = (schema: string, tables: readonly string[]) => sql.join(tables.map((t) => sql.id(schema, t)));

async function holdsSchema(trx: Transaction<PlatformDatabase>, schema: string, grantee: string): Promise<boolean> {
  const r = await sql<{ held: boolean | null }>`
    SELECT (SELECT has_schema_privilege(r.oid, n.oid, 'USAGE') FROM pg_roles r, pg_namespace n WHERE r.rolname = ${grantee} AND n.nspname = ${schema}) AS held`.execute(trx);
  return r.rows[0]?.held === true;
}

/**
 * Names the NOLOGIN role of each tenant schema of `database`: `<database>.<schema>`, unique in
 * the cluster (roles are cluster-wide, schemas per database); past PostgreSQL's 63 bytes the
 * database part becomes a hash of it.
 */
export function tenantRoleNamer(database: string): (schema: string) => string {
  const long = `${createHash('sha256').update(database).digest('hex').slice(0, 16)}`;
  return (schema) => {
    const name = `${database}.${schema}`;
    return Buffer.byteLength(name) <= 63 ? name : `${long}.${schema}`.slice(0, 63);
  };
}

/**
 * Gives a tenant schema its own role (docs/OPERATIONS.md, "Per-tenant roles"): created when
 * absent, granted the rights on the schema and its `tables`, and granted to the runtime role
 * (which sets it for each tenant statement and holds no right on the schema itself: rights it
 * was given directly before are revoked).
 */
export async function grantTenantRole(trx: Transaction<PlatformDatabase>, schema: string, tables: readonly string[], role: string, runtime: string | undefined, group: string, created?: readonly string[]): Promise<void> {
  // A role that already holds its schema was set up, with its memberships, in the transaction
  // that granted it: only new tables need rights. The checks below ask what the runtime role
  // is a member of, which PostgreSQL recomputes over every tenant role: costly at thousands.
  if (created && (await holdsSchema(trx, schema, role))) {
    if (created.length > 0) await grantTenantSchema(trx, schema, created, role);
    return;
  }
  // Without a runtime role of its own, the owner answers requests and sets the role itself.
  // Direct memberships and grants, read from the catalogue: pg_has_role and has_*_privilege
  // would compute all the runtime role belongs to, one entry per tenant role.
  const state = await sql<{ member: boolean | null; direct: boolean; grouped: boolean | null }>`
    WITH r AS (SELECT oid FROM pg_roles WHERE rolname = ${role}),
         who AS (SELECT oid FROM pg_roles WHERE rolname = COALESCE(${runtime ?? null}::text, current_user::text))
    SELECT (SELECT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid AND m.member = (SELECT oid FROM who)) FROM r) AS member,
           EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
                   WHERE ${runtime ?? null}::text IS NOT NULL AND n.nspname = ${schema} AND a.grantee = (SELECT oid FROM who) AND a.privilege_type = 'USAGE') AS direct,
           (SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = ${group} AND m.member = r.oid) FROM r) AS grouped`.execute(trx);
  const { member, direct, grouped } = state.rows[0]!;
  if (member === null) await sql`CREATE ROLE ${sql.id(role)} NOLOGIN`.execute(trx);
  await grantTenantSchema(trx, schema, tables, role);
  // What every tenant's role may do outside its schema, held by their group (one grant per
  // role: granting each role on the shared objects would update one catalogue row from every
  // migration at once).
  if (!grouped) await sql`GRANT ${sql.id(await tenantGroup(trx, group))} TO ${sql.id(role)}`.execute(trx);
  if (!member) await sql`GRANT ${sql.id(role)} TO ${runtime ? sql.id(runtime) : sql`CURRENT_USER`}`.execute(trx);
  if (!runtime || !direct) return;
  if (tables.length > 0) await sql`REVOKE ALL ON TABLE ${listed(schema, tables)} FROM ${sql.id(runtime)}`.execute(trx);
  await sql`REVOKE ALL ON SCHEMA ${sql.id(schema)} FROM ${sql.id(runtime)}`.execute(trx);
}

/**
 * The group of every tenant role, created once (under the platform lock) with the rights a
 * tenant's statements need outside their schema: a write's event signals every dispatcher
 * (events/outbox.ts), insert only, no read.
 */
async function tenantGroup(trx: Transaction<PlatformDatabase>, group: string): Promise<string> {
  if (await roleExists(trx, group)) return group;
  await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.platform}, 1)`.execute(trx);
  if (await roleExists(trx, group)) return group;
  await sql`CREATE ROLE ${sql.id(group)} NOLOGIN`.execute(trx);
  await sql`GRANT USAGE ON SCHEMA shared TO ${sql.id(group)}`.execute(trx);
  await sql`GRANT INSERT ON shared.event_signals TO ${sql.id(group)}`.execute(trx);
  return group;
}

async function roleExists(trx: Transaction<PlatformDatabase>, role: string): Promise<boolean> {
  return (await sql<{ n: number }>`SELECT 1 AS n FROM pg_roles WHERE rolname = ${role}`.execute(trx)).rows.length > 0;
}

/** Renames a tenant schema's role with the schema (a spare taken by a new tenant). */
export async function renameTenantRole(trx: Transaction<PlatformDatabase>, from: string, to: string): Promise<void> {
  if (await roleExists(trx, from)) await sql`ALTER ROLE ${sql.id(from)} RENAME TO ${sql.id(to)}`.execute(trx);
}

/** Drops a tenant schema's role, once its schema is gone (its rights went with the objects). */
export async function dropTenantRole(trx: Transaction<PlatformDatabase>, role: string): Promise<void> {
  await sql`DROP ROLE IF EXISTS ${sql.id(role)}`.execute(trx);
}

/** Whether `role` inherits the rights of the roles granted to it (the runtime role must not). */
export async function inheritsRights(db: Kysely<PlatformDatabase>, role: string): Promise<boolean> {
  const r = await sql<{ inherit: boolean }>`SELECT rolinherit AS inherit FROM pg_roles WHERE rolname = ${role}`.execute(db);
  return r.rows[0]?.inherit ?? false;
}

export async function currentDatabase(db: Kysely<PlatformDatabase>): Promise<string> {
  const r = await sql<{ name: string }>`SELECT current_database() AS name`.execute(db);
  return r.rows[0]!.name;
}

/** The runtime role's rights on the platform schema: it reads the tenant registry. */
export async function grantPlatform(trx: Transaction<PlatformDatabase>, runtime: string): Promise<void> {
  await sql`GRANT USAGE ON SCHEMA shared TO ${sql.id(runtime)}`.execute(trx);
  await sql`GRANT SELECT ON ALL TABLES IN SCHEMA shared TO ${sql.id(runtime)}`.execute(trx);
  // The dispatcher takes the signals it handled and schedules later ones; writers add them.
  await sql`GRANT INSERT, DELETE ON shared.event_signals TO ${sql.id(runtime)}`.execute(trx);
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
    // NOINHERIT: the tenants' roles granted to it give it nothing until it sets one.
    if (!existing.has(runtime)) await client.query(`CREATE ROLE ${runtime} LOGIN NOINHERIT PASSWORD ${quote(passwords.runtime)}`);
    else await client.query(`ALTER ROLE ${runtime} NOINHERIT`);
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
