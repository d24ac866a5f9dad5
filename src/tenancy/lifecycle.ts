import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { sql, type Kysely, type Transaction } from 'kysely';
import type pg from 'pg';
import { SYSTEM_ACTOR, writeAudit, type AuditActor } from '../audit/audit.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { checkSlug } from '../db/identifiers.js';
import { DomainError, FieldChecks, text } from '../errors.js';
import { rebindSecrets } from '../records/rotate.js';
import type { SecretBox } from '../records/secrets.js';
import type { FileStorage } from '../records/storage.js';
import { insertableColumns, loadOrder, loadTable, withoutSelfReferences, NOT_ARCHIVED, prepareExport, resetIdentities, unpackArchive, Meter, type ExportProgress, type PreparedExport, type UnpackedArchive } from './archive.js';
import type { TenantContext } from './directory.js';
import type { SchemaManager } from './schema-manager.js';
import { lockSchema } from './schema-sql.js';
import { checkName, type TenantService, type TenantView } from './service.js';

/**
 * Where backup archives go: the same three calls as attachment storage (put, get, delete),
 * keyed `b_<tenant id>/<backup id>`. The local directory store (BACKUP_DIR) is one; an
 * S3-compatible store would be another.
 */
export type BackupStore = FileStorage;

export interface BackupView {
  readonly id: string;
  readonly tenant_id: string;
  readonly tenant_slug: string;
  readonly kind: 'manual' | 'scheduled' | 'final';
  readonly created_at: Date;
  readonly size_bytes: number;
  readonly sha256: string;
  readonly schema_version: number;
}

export interface LifecycleDeps {
  /** The owner's pool: COPY for exports. */
  readonly pool: pg.Pool;
  readonly storage: FileStorage;
  readonly backups: BackupStore;
  readonly secrets: SecretBox;
  /** Tells the caches of every instance that a tenant changed whole (suspended, restored, deleted). */
  readonly changes?: Changes;
  /** The largest archive an import or restore unpacks (bytes). */
  readonly maxArchiveBytes: number;
}

/** Who changes a tenant through the platform API or the CLI, as its audit records it. */
export const PLATFORM_ACTOR: AuditActor = SYSTEM_ACTOR;

/** Tables a fork does not copy: sessions, API keys, webhook endpoints and what is in flight (SPEC §13). */
const NOT_FORKED: readonly string[] = [...NOT_ARCHIVED, 'api_keys', 'webhooks'];

export type TenantStatus = 'active' | 'suspended';

const contextOf = (t: TenantView): TenantContext => ({ id: t.id, slug: t.slug, schema: t.schema_name, name: t.name });
const backupKey = (tenantId: string, backupId: string) => `b_${tenantId.replace(/-/g, '')}/${backupId}`;

/**
 * A tenant whole (SPEC §13): export, import, fork, backups and restore, suspension and
 * deletion. The platform routes and the CLI both call it.
 */
export class TenantLifecycle {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly schemas: SchemaManager,
    private readonly tenants: TenantService,
    private readonly deps: LifecycleDeps,
  ) {}

  /** A consistent export of the tenant: its manifest, and the gzip tar archive to stream. */
  async export(idOrSlug: string, onProgress?: (p: ExportProgress) => void): Promise<PreparedExport> {
    const tenant = await this.ready(idOrSlug);
    return prepareExport(this.deps.pool, this.deps.storage, { slug: tenant.slug, name: tenant.name, schema: tenant.schema_name }, onProgress);
  }

  /**
   * A new tenant from an archive: unpacked and checked whole first (400), then registered,
   * given its schema at the archive's version, loaded, migrated to the latest version and its
   * secrets bound to the new schema, in one transaction; attachment bytes are stored under the
   * new schema and removed again if anything fails.
   */
  async import(source: Readable, input: { slug: string; name?: string }, options: { actor?: AuditActor; onProgress?: (p: ExportProgress) => void } = {}): Promise<TenantView> {
    const checks = new FieldChecks();
    const slug = checks.check(() => checkSlug(input.slug))!;
    const givenName = input.name === undefined ? undefined : checks.check(() => checkName(input.name!));
    checks.done();
    await this.refuseTaken(slug);
    const archive = await unpackArchive(source, this.schemas.latestVersion, this.deps.maxArchiveBytes);
    const schema = `tenant_${slug}`;
    const stored: string[] = [];
    try {
      const { manifest } = archive;
      const id = await this.db.transaction().execute(async (trx) => {
        const tenant = await this.register(trx, slug, givenName ?? nameOr(manifest.tenant.name, slug), schema);
        await this.loadInto(trx, schema, tenant, archive, options.onProgress);
        stored.push(...(await this.storeAttachments(trx, schema, archive)));
        await writeAudit(tenantDb(trx, schema), options.actor ?? PLATFORM_ACTOR, {
          action: 'tenant.imported',
          entityType: 'tenants',
          entityId: tenant,
          metadata: { from: manifest.tenant.slug, exported_at: manifest.created_at, schema_version: manifest.schema_version },
        });
        return tenant;
      });
      return await this.tenants.get(id);
    } catch (error) {
      await this.removeFiles(stored);
      throw error;
    } finally {
      await archive.discard();
    }
  }

  /**
   * A copy of a tenant made inside the database (`INSERT ... SELECT` per table, one
   * transaction, one snapshot of the source): without sessions, API keys, webhook endpoints or
   * anything in flight; its channels left inactive, so that nothing leaves the fork until an
   * admin turns them on. Attachment bytes are copied; both tenants' audits record it.
   */
  async fork(idOrSlug: string, input: { slug: string; name?: string }, actor: AuditActor = PLATFORM_ACTOR): Promise<TenantView> {
    const source = await this.ready(idOrSlug);
    const checks = new FieldChecks();
    const slug = checks.check(() => checkSlug(input.slug))!;
    const name = input.name === undefined ? `${source.name} (fork)`.slice(0, 200) : checks.check(() => checkName(input.name!))!;
    checks.done();
    await this.refuseTaken(slug);
    const schema = `tenant_${slug}`;
    const stored: string[] = [];
    try {
      const id = await this.db.transaction().execute(async (trx) => {
        await sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`.execute(trx);
        const tenant = await this.register(trx, slug, name, schema);
        await this.schemas.provisionLoaded(trx, schema, tenant, this.schemas.latestVersion, async () => {
          for (const table of await loadOrder(trx as never, schema)) {
            if (NOT_FORKED.includes(table)) continue;
            const list = sql.join((await insertableColumns(trx as never, schema, table)).map((c) => sql.id(c)));
            await sql`INSERT INTO ${sql.id(schema, table)} (${list}) OVERRIDING SYSTEM VALUE SELECT ${list} FROM ${sql.id(source.schema_name, table)}`.execute(trx);
          }
          await resetIdentities(trx as never, schema);
        });
        await this.adoptRows(trx, source.schema_name, schema);
        // Nothing leaves the fork until an admin turns it on: no channel, no mail.
        await sql`UPDATE ${sql.id(schema, 'channel_configs')} SET is_enabled = false`.execute(trx);
        await sql`UPDATE ${sql.id(schema, 'settings')} SET value = 'false'::jsonb WHERE key = 'mail.enabled'`.execute(trx);
        const files = await sql<{ id: string; key: string }>`SELECT id, storage_key AS key FROM ${sql.id(source.schema_name, 'attachments')} WHERE purged_at IS NULL`.execute(trx);
        for (const file of files.rows) {
          const key = `${schema}/${file.id}`;
          stored.push(key);
          await this.deps.storage.put(key, await this.deps.storage.get(file.key), Number.MAX_SAFE_INTEGER);
        }
        await writeAudit(tenantDb(trx, source.schema_name), actor, { action: 'tenant.forked', entityType: 'tenants', entityId: source.id, metadata: { fork: slug, fork_id: tenant } });
        await writeAudit(tenantDb(trx, schema), actor, { action: 'tenant.forked_from', entityType: 'tenants', entityId: tenant, metadata: { source: source.slug, source_id: source.id } });
        return tenant;
      });
      return await this.tenants.get(id);
    } catch (error) {
      await this.removeFiles(stored);
      throw error;
    }
  }

  /** An export of the tenant into the backup store, recorded in `shared.tenant_backups`. */
  async backup(idOrSlug: string, kind: BackupView['kind'] = 'manual'): Promise<BackupView> {
    const tenant = await this.ready(idOrSlug);
    const prepared = await prepareExport(this.deps.pool, this.deps.storage, { slug: tenant.slug, name: tenant.name, schema: tenant.schema_name });
    const id = randomUUID();
    const key = backupKey(tenant.id, id);
    const written = await this.deps.backups.put(key, prepared.stream(), Number.MAX_SAFE_INTEGER);
    try {
      const row = await this.db
        .withSchema('shared')
        .insertInto('tenant_backups')
        .values({ id, tenant_id: tenant.id, tenant_slug: tenant.slug, kind, storage_key: key, size_bytes: written.sizeBytes, sha256: written.sha256, schema_version: prepared.manifest.schema_version })
        .returningAll()
        .executeTakeFirstOrThrow();
      return view(row);
    } catch (error) {
      await this.deps.backups.delete(key);
      throw error;
    }
  }

  /** The tenant's backups, newest first (those of a deleted tenant stay listed under its id). */
  async backups(tenantIdOrSlug: string): Promise<BackupView[]> {
    const tenantId = await this.tenantIdOf(tenantIdOrSlug);
    const rows = await this.db.withSchema('shared').selectFrom('tenant_backups').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at', 'desc').orderBy('id').execute();
    return rows.map(view);
  }

  /**
   * Returns the tenant to a backup's state in place, in one transaction: the archive checked
   * whole (its SHA-256 as recorded, then every file), the current schema set aside, the backup
   * loaded under the tenant's schema name, the old one dropped. Its sessions end (an archive
   * holds none); its audit is the backup's plus a `tenant.restored` row.
   */
  async restore(idOrSlug: string, backupId: string, actor: AuditActor = PLATFORM_ACTOR): Promise<TenantView> {
    const tenant = await this.ready(idOrSlug);
    const backup = await this.findBackup(tenant.id, backupId);
    const source = await this.deps.backups.get(backup.storage_key);
    const whole = new Meter();
    const archive = await unpackArchive(source.pipe(whole), this.schemas.latestVersion, this.deps.maxArchiveBytes);
    const schema = tenant.schema_name;
    const stored: string[] = [];
    let replaced: string[] = [];
    try {
      if (whole.hash.digest('hex') !== backup.sha256) throw new DomainError('tenant.archive_invalid', text('detail.backup_altered', { id: backup.id }));
      await this.db.transaction().execute(async (trx) => {
        await lockSchema(trx, schema);
        // Writes wait from here (reads go on) and fail once the schema is replaced: none is acknowledged and then lost.
        await this.holdWrites(trx, schema);
        const aside = `restoring_${randomBytes(8).toString('hex')}`;
        replaced = (await sql<{ key: string }>`SELECT storage_key AS key FROM ${sql.id(schema, 'attachments')} WHERE purged_at IS NULL`.execute(trx)).rows.map((r) => r.key);
        await sql`ALTER SCHEMA ${sql.id(schema)} RENAME TO ${sql.id(aside)}`.execute(trx);
        await trx.withSchema('shared').deleteFrom('tenant_schemas').where('schema_name', '=', schema).execute();
        await this.loadInto(trx, schema, tenant.id, archive);
        stored.push(...(await this.storeAttachments(trx, schema, archive)));
        await sql`DROP SCHEMA ${sql.id(aside)} CASCADE`.execute(trx);
        await writeAudit(tenantDb(trx, schema), actor, {
          action: 'tenant.restored',
          entityType: 'tenants',
          entityId: tenant.id,
          metadata: { backup_id: backup.id, backup_created_at: backup.created_at.toISOString(), schema_version: archive.manifest.schema_version },
        });
      });
    } catch (error) {
      // Files the backup brought that the tenant did not have before go again.
      await this.removeFiles(stored.filter((k) => !replaced.includes(k)));
      throw error;
    } finally {
      await archive.discard();
    }
    // Files of the replaced rows that the backup does not hold.
    await this.removeFiles(replaced.filter((k) => !stored.includes(k)));
    await this.deps.changes?.committed(contextOf(tenant), [{ kind: 'tenant' }]);
    return this.tenants.get(tenant.id);
  }

  /** Suspends (its routes answer 403 at once on every instance) or resumes a tenant. */
  async setStatus(idOrSlug: string, status: TenantStatus, actor: AuditActor = PLATFORM_ACTOR): Promise<TenantView> {
    if (status !== 'active' && status !== 'suspended') throw DomainError.invalid('status', text('reason.status_active_suspended'));
    const tenant = await this.tenants.get(idOrSlug);
    if (tenant.tenant_status === status) return tenant;
    await this.db.transaction().execute(async (trx) => {
      await trx.withSchema('shared').updateTable('tenants').set({ status, updated_at: new Date() }).where('id', '=', tenant.id).execute();
      if (tenant.status === 'ready') {
        await writeAudit(tenantDb(trx, tenant.schema_name), actor, { action: status === 'suspended' ? 'tenant.suspended' : 'tenant.resumed', entityType: 'tenants', entityId: tenant.id, metadata: { status } });
      }
    });
    await this.deps.changes?.committed(contextOf(tenant), [{ kind: 'tenant' }]);
    return this.tenants.get(tenant.id);
  }

  /**
   * Removes a tenant: a final backup first (unless `backup` is false), then its registration,
   * schema, per-tenant role and pending signals in one transaction, then its attachment files.
   */
  async delete(idOrSlug: string, options: { backup: boolean }): Promise<{ id: string; slug: string; backup: BackupView | null }> {
    const tenant = await this.tenants.get(idOrSlug);
    let final: BackupView | null = null;
    const files = await this.db.transaction().execute(async (trx) => {
      // Writes wait from before the final backup to the drop: the backup holds every acknowledged one.
      if (tenant.status !== 'absent') await this.holdWrites(trx, tenant.schema_name);
      if (options.backup) final = await this.backup(tenant.id, 'final');
      const keys = tenant.status === 'absent' ? [] : await this.attachmentKeys(trx, tenant.schema_name);
      await trx.withSchema('shared').deleteFrom('tenants').where('id', '=', tenant.id).execute();
      await trx.withSchema('shared').deleteFrom('event_signals').where('schema_name', '=', tenant.schema_name).execute();
      await this.schemas.dropSchemaIn(trx, tenant.schema_name);
      return keys;
    });
    await this.removeFiles(files);
    await this.deps.changes?.committed(contextOf(tenant), [{ kind: 'tenant' }]);
    return { id: tenant.id, slug: tenant.slug, backup: final };
  }

  /** Deletes backups older than `days`, keeping each tenant's newest; returns how many went. */
  async prune(days: number): Promise<number> {
    const rows = await sql<{ key: string }>`
      DELETE FROM shared.tenant_backups b
      WHERE b.created_at < now() - make_interval(days => ${days})
        AND b.id <> (SELECT n.id FROM shared.tenant_backups n WHERE n.tenant_id = b.tenant_id ORDER BY n.created_at DESC, n.id LIMIT 1)
      RETURNING b.storage_key AS key`.execute(this.db);
    for (const row of rows.rows) await this.deps.backups.delete(row.key);
    return rows.rows.length;
  }

  /** The schema at the archive's version, its rows, the later migrations, its secrets and file keys bound to it. */
  private async loadInto(trx: Transaction<PlatformDatabase>, schema: string, tenantId: string, archive: UnpackedArchive, onProgress?: (p: ExportProgress) => void): Promise<void> {
    const { manifest } = archive;
    await this.schemas.provisionLoaded(trx, schema, tenantId, manifest.schema_version, async () => {
      const order = await loadOrder(trx as never, schema);
      const unknown = Object.keys(manifest.tables).filter((t) => !order.includes(t));
      if (unknown.length) throw new DomainError('tenant.archive_invalid', text('detail.archive_unknown_tables', { version: manifest.schema_version, tables: unknown.join(', ') }));
      await withoutSelfReferences(trx as never, schema, async () => {
        for (const table of order) {
          if (!manifest.tables[table]) continue;
          const columns = await insertableColumns(trx as never, schema, table);
          await loadTable(trx as never, schema, table, archive.tableFile(table), columns, (rows) => onProgress?.({ table, rows, bytes: 0 }));
        }
      });
      await resetIdentities(trx as never, schema);
    });
    await this.adoptRows(trx, manifest.tenant.schema, schema);
  }

  /** Attachment bytes of the loaded rows under the schema's keys, from the archive; the keys written. */
  private async storeAttachments(trx: Transaction<PlatformDatabase>, schema: string, archive: UnpackedArchive): Promise<string[]> {
    const files = await sql<{ id: string; sha: string }>`SELECT id, checksum_sha256 AS sha FROM ${sql.id(schema, 'attachments')} WHERE purged_at IS NULL`.execute(trx);
    const stored: string[] = [];
    for (const file of files.rows) {
      if (!archive.manifest.attachments[file.sha]) throw new DomainError('tenant.archive_invalid', text('detail.archive_missing_file', { id: file.id, sha: file.sha }));
      const key = `${schema}/${file.id}`;
      stored.push(key);
      await this.deps.storage.put(key, createReadStream(archive.attachmentFile(file.sha)), Number.MAX_SAFE_INTEGER);
    }
    return stored;
  }

  /** Rows moved from schema `from` into `to`: attachment keys and encrypted secrets follow their new schema. */
  private async adoptRows(trx: Transaction<PlatformDatabase>, from: string, to: string): Promise<void> {
    await sql`UPDATE ${sql.id(to, 'attachments')} SET storage_key = ${`${to}/`} || id::text`.execute(trx);
    // Restored under its own name, a secret keeps its binding (and its bytes).
    if (from !== to) await rebindSecrets(trx as never, this.deps.secrets, from, to);
  }

  /** SHARE locks on every table of the schema: reads go on, writes wait for the transaction to end. */
  private async holdWrites(trx: Transaction<PlatformDatabase>, schema: string): Promise<void> {
    const tables = await sql<{ name: string }>`SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relkind = 'r'`.execute(trx);
    if (tables.rows.length === 0) return;
    await sql`LOCK TABLE ${sql.join(tables.rows.map((t) => sql.id(schema, t.name)))} IN SHARE MODE`.execute(trx);
  }

  private async attachmentKeys(trx: Transaction<PlatformDatabase>, schema: string): Promise<string[]> {
    const exists = await sql<{ found: boolean }>`SELECT to_regclass(${`${schema}.attachments`}) IS NOT NULL AS found`.execute(trx);
    if (!exists.rows[0]?.found) return [];
    return (await sql<{ key: string }>`SELECT storage_key AS key FROM ${sql.id(schema, 'attachments')}`.execute(trx)).rows.map((r) => r.key);
  }

  private async removeFiles(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((key) => this.deps.storage.delete(key).catch(() => undefined)));
  }

  private async register(trx: Transaction<PlatformDatabase>, slug: string, name: string, schema: string): Promise<string> {
    const row = await trx.withSchema('shared').insertInto('tenants').values({ slug, name, schema_name: schema }).returning('id').executeTakeFirstOrThrow();
    return row.id;
  }

  private async refuseTaken(slug: string): Promise<void> {
    const exists = await this.db
      .withSchema('shared')
      .selectFrom('tenants')
      .select('id')
      .where((eb) => eb.or([eb('slug', '=', slug), eb('schema_name', '=', `tenant_${slug}`)]))
      .executeTakeFirst();
    if (exists) throw DomainError.conflict('tenant.slug_taken', text('detail.slug_taken', { slug }));
  }

  /** A tenant whose schema is ready (what export, fork, backup and restore read). */
  private async ready(idOrSlug: string): Promise<TenantView> {
    const tenant = await this.tenants.get(idOrSlug);
    if (tenant.status !== 'ready') throw DomainError.conflict('tenant.not_ready', text('detail.tenant_not_ready', { status: tenant.status }));
    return tenant;
  }

  /** A registered tenant's id, or the id a deleted tenant's backups are kept under. */
  private async tenantIdOf(idOrSlug: string): Promise<string> {
    try {
      return (await this.tenants.get(idOrSlug)).id;
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== 'tenant.not_found') throw error;
      const kept = await this.db
        .withSchema('shared')
        .selectFrom('tenant_backups')
        .select('tenant_id')
        .where((eb) => (UUID.test(idOrSlug) ? eb('tenant_id', '=', idOrSlug) : eb('tenant_slug', '=', idOrSlug)))
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (!kept) throw error;
      return kept.tenant_id;
    }
  }

  private async findBackup(tenantId: string, backupId: string): Promise<BackupView & { storage_key: string }> {
    if (!UUID.test(backupId)) throw DomainError.invalid('backup_id', text('reason.uuid'));
    const row = await this.db.withSchema('shared').selectFrom('tenant_backups').selectAll().where('tenant_id', '=', tenantId).where('id', '=', backupId).executeTakeFirst();
    if (!row) throw DomainError.notFound('backup');
    return { ...view(row), storage_key: row.storage_key };
  }
}

/** An archive's tenant name when it is a valid name, else the slug. */
function nameOr(name: unknown, slug: string): string {
  try {
    return typeof name === 'string' ? checkName(name) : slug;
  } catch {
    return slug;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function view(row: { id: string; tenant_id: string; tenant_slug: string; kind: BackupView['kind']; created_at: Date; size_bytes: string | number; sha256: string; schema_version: number }): BackupView {
  return { id: row.id, tenant_id: row.tenant_id, tenant_slug: row.tenant_slug, kind: row.kind, created_at: row.created_at, size_bytes: Number(row.size_bytes), sha256: row.sha256, schema_version: row.schema_version };
}

/** Passes bytes through and reports how many went by (for CLI progress). */
export function counting(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      total += chunk.length;
      onBytes(total);
      done(null, chunk);
    },
  });
}
