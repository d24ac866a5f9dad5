import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { tenantDb, tenantRoleOf } from '../db/database.js';
import { resetChainHead } from '../db/audit-chain.js';
import { checkSchemaName } from '../db/identifiers.js';
import type { TenantMigration } from '../db/migrations/migration.js';
import { tenantMigrations } from '../db/migrations/index.js';
import type { PlatformDatabase, SchemaStatus } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { dropTenantRole, grantTenantRole, grantTenantSchema, renameTenantRole } from '../db/roles.js';
import { LOCK_CLASS } from '../db/platform.js';
import { DomainError, text } from '../errors.js';
import { compileMigration, createdTables, errorMessage, exactCount, executeBatch, indexesAfterLoad, isValidSchemaName, listTables, lockSchema, ownTables, schemaExists } from './schema-sql.js';
import { seedDefaults } from './seed.js';

export interface ProvisionResult {
  readonly schema_name: string;
  readonly status: SchemaStatus;
  readonly from_version: number;
  readonly schema_version: number;
  readonly applied: string[];
  readonly tables: string[];
  readonly created_tables: string[];
  readonly duration_ms: number;
}

export interface SchemaTableInfo {
  readonly name: string;
  readonly estimated_rows: number;
  readonly size_bytes: number;
}

export interface SchemaInfo {
  readonly schema_name: string;
  readonly exists: boolean;
  readonly tenant_id: string | null;
  readonly version: number;
  readonly latest_version: number;
  readonly status: SchemaStatus | 'absent';
  readonly tables: readonly SchemaTableInfo[];
  readonly total_size_bytes: number;
  readonly started_at: Date | null;
  readonly finished_at: Date | null;
  readonly last_duration_ms: number | null;
  readonly last_error: string | null;
}

export type MigrationState = 'pending' | 'running' | 'done' | 'failed';

export interface MigrationStateRow {
  readonly schema_name: string;
  readonly slug: string | null;
  readonly tenant_id: string | null;
  readonly spare: boolean;
  readonly version: number;
  readonly state: MigrationState;
  readonly status: string;
  readonly last_error: string | null;
  readonly started_at: Date | null;
  readonly finished_at: Date | null;
  readonly duration_ms: number | null;
}

export interface MigrationStates {
  readonly latest_version: number;
  readonly summary: Record<MigrationState, number>;
  readonly items: Omit<MigrationStateRow, 'status'>[];
  readonly total: number;
  readonly page: number;
  readonly page_size: number;
}

export interface MigrateAllOptions {
  readonly concurrency: number;
  /** Schemas migrated first; the run stops there if any of them fails. */
  readonly canary?: number;
  /** Schemas per wave after the canary (default: all the rest in one). */
  readonly wave?: number;
  /** Migrate the failed (quarantined) schemas instead of the pending ones. */
  readonly retryFailed?: boolean;
  readonly onProgress?: (p: MigrateAllProgress) => void;
}

type KnownSchema = { schema_name: string; tenant_id: string | null; version: number; status: string; is_spare: boolean };

export interface MigrateAllProgress {
  readonly done: number;
  readonly total: number;
  /** `canary` or `wave i/n`. */
  readonly phase: string;
  readonly schema_name: string;
  readonly ok: boolean;
  readonly error?: string;
}

export interface MigrateAllResult {
  readonly total: number;
  /** Of `total`, the spare schemas kept ready for new tenants. */
  readonly spares: number;
  readonly up_to_date: number;
  readonly migrated: number;
  /** Pending schemas the run did not reach (it stopped after a failed canary). */
  readonly not_started: number;
  /** `canary` when a failed canary stopped the run. */
  readonly stopped_after: string | null;
  readonly failed: readonly { schema_name: string; error: string }[];
  readonly duration_ms: number;
}

/** Work run inside a tenant's provisioning transaction, after its defaults (e.g. the first admin). */
export type ProvisionHook = (db: Kysely<TenantDatabase>) => Promise<void>;

/**
 * Creates and evolves tenant schemas. Provisioning one tenant, migrating one and migrating
 * all are the same operation: under a per-tenant advisory lock, in one transaction, apply
 * the migrations the schema lacks, then the idempotent default data, then record the state.
 */
export interface SchemaManagerOptions {
  /**
   * Schemas kept provisioned ahead of demand. Creating a schema's 160-odd relations is
   * where provisioning spends its time; a new tenant instead takes a spare (a catalogue-only
   * rename) and the pool is refilled in the background.
   */
  readonly spares?: number;
  readonly onSpareError?: (error: unknown) => void;
  /** The role requests run as, when it is not the owner: granted its rights on every schema made or migrated. */
  readonly runtimeRole?: string;
  /**
   * Each schema's own role (per-tenant roles), made with the schema, granted its rights and
   * granted to the runtime role, renamed and dropped with it. Default: the naming `db` was made
   * with (one handle both migrating and answering); none: the runtime role holds the rights on
   * every schema itself.
   */
  readonly tenantRole?: (schema: string) => string;
}

export class SchemaManager {
  readonly latestVersion: number;
  private readonly spareTarget: number;
  private refilling: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly migrations: readonly TenantMigration[] = tenantMigrations,
    private options: SchemaManagerOptions = {},
  ) {
    this.latestVersion = migrations.reduce((max, m) => Math.max(max, m.version), 0);
    this.spareTarget = options.spares ?? 0;
    if (!('tenantRole' in options)) this.options = { ...options, tenantRole: tenantRoleOf(db) };
  }

  /**
   * Tops the spare pool up to its target, one schema at a time, in the background.
   * Returns the running refill (callers may ignore it); never rejects.
   */
  replenishSpares(): Promise<void> {
    if (this.spareTarget <= 0 || this.closed) return Promise.resolve();
    this.refilling ??= (async () => {
      try {
        while (!this.closed && (await this.provisionSpare())) {
          // one more spare made; loop until the pool is full
        }
      } catch (error) {
        this.options.onSpareError?.(error);
      } finally {
        this.refilling = undefined;
      }
    })();
    return this.refilling;
  }

  /** Stops refilling and waits for a refill under way (called at shutdown, before the pool closes). */
  async close(): Promise<void> {
    this.closed = true;
    await this.refilling;
  }

  /**
   * Grants the rights requests need on every schema that lacks them (schemas made before the
   * service had a runtime role of its own, or before per-tenant roles were turned on; with
   * them off again, the runtime role takes its rights back); returns how many it granted.
   */
  async grantRuntimeWhereMissing(): Promise<number> {
    const { runtimeRole: runtime, tenantRole } = this.options;
    if (!runtime && !tenantRole) return 0;
    const schemas = await sql<{ schema_name: string; runtime_usage: boolean | null }>`
      SELECT s.schema_name, CASE WHEN ${runtime ?? null}::text IS NULL THEN NULL ELSE has_schema_privilege(${runtime ?? null}::text, n.oid, 'USAGE') END AS runtime_usage
      FROM shared.tenant_schemas s JOIN pg_namespace n ON n.nspname = s.schema_name`.execute(this.db);
    let missing = schemas.rows.filter((r) => isValidSchemaName(r.schema_name));
    if (tenantRole) {
      // A role that does not exist yet, or is not granted to the runtime role.
      const ready = await sql<{ rolname: string }>`
        SELECT r.rolname FROM pg_roles r WHERE r.rolname = ANY(${missing.map((r) => tenantRole(r.schema_name))}::text[])
          AND (${runtime ?? null}::text IS NULL OR pg_has_role(${runtime ?? null}::text, r.oid, 'MEMBER'))`.execute(this.db);
      const have = new Set(ready.rows.map((r) => r.rolname));
      missing = missing.filter((r) => !have.has(tenantRole(r.schema_name)));
    } else missing = missing.filter((r) => r.runtime_usage === false);
    for (const { schema_name: schema } of missing) {
      await this.db.transaction().execute(async (trx) => {
        await lockSchema(trx, schema);
        // Once per schema at start: every table it holds, by a scan of its namespace.
        await this.grant(trx, schema, await listTables(trx, schema));
      });
    }
    return missing.length;
  }

  /** The rights requests need on `schema`: its own role's, or the runtime role's. */
  /** `created`: the tables this migration made, when only they may lack rights (see grantTenantSchema). */
  private async grant(trx: Transaction<PlatformDatabase>, schema: string, tables: readonly string[], created?: readonly string[]): Promise<void> {
    const { runtimeRole: runtime, tenantRole } = this.options;
    // The group's name: the namer's, for a name no schema takes.
    if (tenantRole) await grantTenantRole(trx, schema, tables, tenantRole(schema), runtime, tenantRole('tenants'), created);
    else if (runtime) await grantTenantSchema(trx, schema, tables, runtime, created);
  }

  async countSpares(): Promise<number> {
    const row = await this.db
      .withSchema('shared')
      .selectFrom('tenant_schemas')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('is_spare', '=', true)
      .where('status', '=', 'ready')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async initializeTenantSchema(tenantId: string | null, schemaName: string, hook?: ProvisionHook): Promise<ProvisionResult> {
    return this.provision(checkSchemaName(schemaName), tenantId, hook);
  }

  async migrateTenant(schemaName: string): Promise<ProvisionResult> {
    return this.provision(checkSchemaName(schemaName), null);
  }

  /**
   * Migrates every pending tenant schema (or, with `retryFailed`, every failed one): first a
   * canary of `canary` schemas, stopping there if any of them fails; then the rest in waves of
   * `wave`, where a schema that fails is quarantined (it answers 503 until it is migrated) and
   * the others go on. `concurrency` schemas at a time within a phase. A schema already done is
   * skipped, so a run that was killed resumes where it stopped.
   */
  async migrateAll(options: MigrateAllOptions): Promise<MigrateAllResult> {
    const started = Date.now();
    const targets = await this.knownSchemas();
    const wanted = options.retryFailed ? (t: KnownSchema) => t.status === 'failed' : (t: KnownSchema) => t.status !== 'failed' && (t.version < this.latestVersion || t.status !== 'ready');
    const pending = targets.filter(wanted);
    const failed: { schema_name: string; error: string }[] = [];
    const canary = Math.min(options.canary ?? 0, pending.length);
    const waveSize = options.wave && options.wave > 0 ? options.wave : pending.length - canary || 1;
    const phases: { name: string; items: KnownSchema[] }[] = [];
    if (canary > 0) phases.push({ name: 'canary', items: pending.slice(0, canary) });
    const rest = pending.slice(canary);
    const waves = Math.ceil(rest.length / waveSize);
    for (let w = 0; w < waves; w++) phases.push({ name: `wave ${w + 1}/${waves}`, items: rest.slice(w * waveSize, (w + 1) * waveSize) });
    let done = 0;
    let stoppedAfter: string | undefined;
    for (const phase of phases) {
      const before = failed.length;
      let next = 0;
      const worker = async () => {
        while (next < phase.items.length) {
          const target = phase.items[next++]!;
          let error: string | undefined;
          try {
            await this.provision(target.schema_name, target.tenant_id);
          } catch (e) {
            error = errorMessage(e);
            failed.push({ schema_name: target.schema_name, error });
          }
          done++;
          options.onProgress?.({ done, total: pending.length, phase: phase.name, schema_name: target.schema_name, ok: error === undefined, ...(error ? { error } : {}) });
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, phase.items.length)) }, worker));
      // A canary that fails stops the run: the waves would most likely fail the same way.
      if (phase.name === 'canary' && failed.length > before) {
        stoppedAfter = 'canary';
        break;
      }
    }
    return {
      total: targets.length,
      spares: targets.filter((t) => t.is_spare).length,
      up_to_date: targets.filter((t) => t.status === 'ready' && t.version >= this.latestVersion).length,
      migrated: done - failed.length,
      failed,
      not_started: pending.length - done,
      stopped_after: stoppedAfter ?? null,
      duration_ms: Date.now() - started,
    };
  }

  /** Every schema's migration state (pending, running, done, failed), as GET /api/v1/migrations shows it. */
  async migrationStates(query: { state?: MigrationState; page: number; page_size: number }): Promise<MigrationStates> {
    const states = this.statesQuery();
    const [rows, summary] = await Promise.all([
      sql<MigrationStateRow & { total: string }>`
        SELECT *, count(*) OVER () AS total FROM (${states}) x
        WHERE ${query.state ? sql`state = ${query.state}` : sql`true`}
        ORDER BY schema_name LIMIT ${query.page_size} OFFSET ${(query.page - 1) * query.page_size}`.execute(this.db),
      this.migrationSummary(),
    ]);
    return {
      latest_version: this.latestVersion,
      summary,
      items: rows.rows.map(({ total: _total, status: _status, ...r }) => r),
      total: Number(rows.rows[0]?.total ?? 0),
      page: query.page,
      page_size: query.page_size,
    };
  }

  /** How many schemas are in each migration state (GET /api/v1/migrations' summary, and /metrics). */
  async migrationSummary(): Promise<Record<MigrationState, number>> {
    const counts = await sql<{ state: MigrationState; n: string }>`SELECT state, count(*) AS n FROM (${this.statesQuery()}) x GROUP BY state`.execute(this.db);
    const summary = { pending: 0, running: 0, done: 0, failed: 0 };
    for (const c of counts.rows) summary[c.state] = Number(c.n);
    return summary;
  }

  /** Every schema with its migration state. */
  private statesQuery() {
    // Running: a transaction holds the schema's advisory lock (every provisioning and migration takes it).
    return sql`
      SELECT k.*, CASE
        WHEN EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND l.classid = ${LOCK_CLASS.tenantSchema}::oid AND l.objid = (hashtext(k.schema_name)::bigint & 4294967295)::oid) THEN 'running'
        WHEN k.status = 'failed' THEN 'failed'
        WHEN k.status = 'ready' AND k.version >= ${this.latestVersion} THEN 'done'
        ELSE 'pending' END AS state
      FROM (
        SELECT COALESCE(s.schema_name, t.schema_name) AS schema_name, t.slug, COALESCE(s.tenant_id, t.id) AS tenant_id,
               COALESCE(s.version, 0) AS version, COALESCE(s.status, 'absent') AS status, COALESCE(s.is_spare, false) AS spare,
               s.last_error, s.started_at, s.finished_at, s.last_duration_ms AS duration_ms
        FROM shared.tenant_schemas s FULL JOIN shared.tenants t ON t.schema_name = s.schema_name
      ) k`;
  }

  async listTablesInSchema(schemaName: string): Promise<string[]> {
    return listTables(this.db, checkSchemaName(schemaName));
  }

  async getSchemaInfo(schemaName: string): Promise<SchemaInfo> {
    const schema = checkSchemaName(schemaName);
    const [record, tables, exists] = await Promise.all([
      this.record(this.db, schema),
      sql<{ name: string; estimated_rows: string; size_bytes: string }>`
        SELECT c.relname AS name, c.reltuples::bigint AS estimated_rows, pg_total_relation_size(c.oid) AS size_bytes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'p')
        ORDER BY c.relname`.execute(this.db),
      schemaExists(this.db, schema),
    ]);
    const tableInfo = await Promise.all(
      tables.rows.map(async (t) => ({
        name: t.name,
        // reltuples is -1 until the table is first vacuumed or analyzed: count such (new, small) tables.
        estimated_rows: Number(t.estimated_rows) >= 0 ? Number(t.estimated_rows) : await exactCount(this.db, schema, t.name),
        size_bytes: Number(t.size_bytes),
      })),
    );
    return {
      schema_name: schema,
      exists,
      tenant_id: record?.tenant_id ?? null,
      version: record?.version ?? 0,
      latest_version: this.latestVersion,
      status: record?.status ?? 'absent',
      tables: tableInfo,
      total_size_bytes: tableInfo.reduce((sum, t) => sum + t.size_bytes, 0),
      started_at: record?.started_at ?? null,
      finished_at: record?.finished_at ?? null,
      last_duration_ms: record?.last_duration_ms ?? null,
      last_error: record?.last_error ?? null,
    };
  }

  /** Drops a schema and its state record. The caller confirms; reserved schemas are refused. */
  async exists(schemaName: string): Promise<boolean> {
    return schemaExists(this.db, checkSchemaName(schemaName));
  }

  async dropSchema(schemaName: string): Promise<boolean> {
    return this.db.transaction().execute((trx) => this.dropSchemaIn(trx, schemaName));
  }

  /** Drops the schema, its per-tenant role and its state row, in the caller's transaction; whether it existed. */
  async dropSchemaIn(trx: Transaction<PlatformDatabase>, schemaName: string): Promise<boolean> {
    const schema = checkSchemaName(schemaName);
    await lockSchema(trx, schema);
    const existed = await schemaExists(trx, schema);
    await sql`DROP SCHEMA IF EXISTS ${sql.id(schema)} CASCADE`.execute(trx);
    if (this.options.tenantRole) await dropTenantRole(trx, this.options.tenantRole(schema));
    await trx.withSchema('shared').deleteFrom('tenant_schemas').where('schema_name', '=', schema).execute();
    return existed;
  }

  /**
   * Makes one spare if the pool is below target. Instances refilling at the same moment
   * may overshoot the target by one spare each; the next claims use them up.
   */
  private async provisionSpare(): Promise<boolean> {
    if ((await this.countSpares()) >= this.spareTarget) return false;
    await this.provision(`spare_${randomBytes(8).toString('hex')}`, null, undefined, true);
    return true;
  }

  /** Renames a ready spare to `schema`, if there is one; returns the version it was at. */
  private async claimSpare(trx: Transaction<PlatformDatabase>, schema: string): Promise<number | undefined> {
    const spare = await trx
      .withSchema('shared')
      .selectFrom('tenant_schemas')
      .select(['schema_name', 'version'])
      .where('is_spare', '=', true)
      .where('status', '=', 'ready')
      .orderBy('created_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!spare || !isValidSchemaName(spare.schema_name)) return undefined;
    await sql`ALTER SCHEMA ${sql.id(spare.schema_name)} RENAME TO ${sql.id(schema)}`.execute(trx);
    if (this.options.tenantRole) await renameTenantRole(trx, this.options.tenantRole(spare.schema_name), this.options.tenantRole(schema));
    await trx.withSchema('shared').deleteFrom('tenant_schemas').where('schema_name', '=', spare.schema_name).execute();
    return spare.version;
  }

  private async provision(schema: string, tenantId: string | null, hook?: ProvisionHook, isSpare = false): Promise<ProvisionResult> {
    const started = Date.now();
    await this.markStarted(schema, tenantId, isSpare);
    try {
      return await this.db.transaction().execute(async (trx) => {
        await lockSchema(trx, schema);
        const before = await ownTables(trx, schema);
        const record = await this.record(trx, schema);
        let fromVersion = record?.version ?? 0;
        if (!isSpare && fromVersion === 0 && before.length === 0 && !(await schemaExists(trx, schema))) {
          fromVersion = (await this.claimSpare(trx, schema)) ?? 0;
        }
        const pending = this.migrations.filter((m) => m.version > fromVersion).sort((a, b) => a.version - b.version);

        await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(trx);
        await sql`CREATE TABLE IF NOT EXISTS ${sql.id(schema, 'activity_log')} (LIKE tenant_template.activity_log INCLUDING ALL)`.execute(trx);
        const statements = pending.flatMap((m) => compileMigration(trx, m, schema));
        await executeBatch(trx, statements);
        const tables = await ownTables(trx, schema, createdTables(statements));
        await this.grant(trx, schema, tables, tables.filter((t) => !before.includes(t)));
        const tdb = tenantDb(trx, schema);
        await seedDefaults(tdb);
        if (hook) await hook(tdb);

        const version = Math.max(fromVersion, this.latestVersion);
        const duration = Date.now() - started;
        await trx
          .withSchema('shared')
          .updateTable('tenant_schemas')
          .set({ version, status: 'ready', finished_at: new Date(), last_duration_ms: duration, last_error: null, updated_at: new Date() })
          .where('schema_name', '=', schema)
          .execute();
        return {
          schema_name: schema,
          status: 'ready' as const,
          from_version: fromVersion,
          schema_version: version,
          applied: pending.map((m) => `${m.version}_${m.name}`),
          tables,
          created_tables: tables.filter((t) => !before.includes(t)),
          duration_ms: duration,
        };
      });
    } catch (error) {
      await this.markFailed(schema, error, Date.now() - started);
      throw error;
    }
  }

  /**
   * Makes the schema of a tenant whose rows come from elsewhere (an archive, another tenant),
   * inside the caller's transaction (with the tenant's registration, so that a failure leaves
   * nothing): the tables as of `fromVersion`, then `load` fills them, then the later migrations
   * run over the loaded rows. No default rows are seeded.
   */
  async provisionLoaded(trx: Transaction<PlatformDatabase>, schema: string, tenantId: string, fromVersion: number, load: () => Promise<void>): Promise<void> {
    checkSchemaName(schema);
    await lockSchema(trx, schema);
    if (await schemaExists(trx, schema)) throw DomainError.conflict('tenant.slug_taken', text('detail.schema_taken', { schema }));
    const started = new Date();
    await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(trx);
    await sql`CREATE TABLE ${sql.id(schema, 'activity_log')} (LIKE tenant_template.activity_log INCLUDING ALL)`.execute(trx);
    const upTo = (from: number, to: number) => this.migrations.filter((m) => m.version > from && m.version <= to).sort((a, b) => a.version - b.version);
    const first = indexesAfterLoad(upTo(0, fromVersion).flatMap((m) => compileMigration(trx, m, schema)));
    await executeBatch(trx, first.before);
    await load();
    await executeBatch(trx, first.after);
    const later = upTo(fromVersion, Infinity).flatMap((m) => compileMigration(trx, m, schema));
    await executeBatch(trx, later);
    // The loaded audit rows carry their chain; its head follows them.
    await resetChainHead(schema).execute(trx);
    // What a later release added to the defaults (permissions, settings), as a migration adds it.
    await seedDefaults(tenantDb(trx, schema));
    await this.grant(trx, schema, await listTables(trx, schema));
    await trx
      .withSchema('shared')
      .insertInto('tenant_schemas')
      .values({ schema_name: schema, tenant_id: tenantId, status: 'ready', version: this.latestVersion, started_at: started, finished_at: new Date(), last_duration_ms: Date.now() - started.getTime(), is_spare: false })
      .execute();
  }

  /** Visible at once (outside the provisioning transaction): the schema is being worked on. */
  private async markStarted(schema: string, tenantId: string | null, isSpare: boolean): Promise<void> {
    await this.db
      .withSchema('shared')
      .insertInto('tenant_schemas')
      .values({ schema_name: schema, tenant_id: tenantId, status: 'initializing', started_at: new Date(), is_spare: isSpare })
      .onConflict((oc) =>
        oc.column('schema_name').doUpdateSet((eb) => ({
          tenant_id: eb.fn.coalesce('tenant_schemas.tenant_id', eb.val(tenantId)),
          // A ready schema stays ready while it is brought up to date.
          status: sql<SchemaStatus>`CASE WHEN tenant_schemas.status = 'ready' THEN 'ready' ELSE 'initializing' END`,
          started_at: new Date(),
          updated_at: new Date(),
        })),
      )
      .execute();
  }

  private async markFailed(schema: string, error: unknown, duration: number): Promise<void> {
    try {
      await this.db
        .withSchema('shared')
        .updateTable('tenant_schemas')
        .set({ status: 'failed', last_error: errorMessage(error).slice(0, 2000), finished_at: new Date(), last_duration_ms: duration, updated_at: new Date() })
        .where('schema_name', '=', schema)
        .execute();
    } catch {
      // The database itself may be what failed; the original error is what the caller needs.
    }
  }

  private async record(db: Kysely<PlatformDatabase>, schema: string) {
    return db.withSchema('shared').selectFrom('tenant_schemas').selectAll().where('schema_name', '=', schema).executeTakeFirst();
  }

  /** Registered tenants (whether initialized yet or not) and any schema we have a record of. */
  private async knownSchemas(): Promise<KnownSchema[]> {
    const rows = await sql<{ schema_name: string; tenant_id: string | null; version: number; status: string; is_spare: boolean }>`
      SELECT COALESCE(s.schema_name, t.schema_name) AS schema_name,
             COALESCE(s.tenant_id, t.id) AS tenant_id,
             COALESCE(s.version, 0) AS version,
             COALESCE(s.status, 'absent') AS status,
             COALESCE(s.is_spare, false) AS is_spare
      FROM shared.tenant_schemas s
      FULL JOIN shared.tenants t ON t.schema_name = s.schema_name
      ORDER BY 1`.execute(this.db);
    return rows.rows.filter((r) => isValidSchemaName(r.schema_name));
  }
}
