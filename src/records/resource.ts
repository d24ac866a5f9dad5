import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RecordKit } from './routes.js';
import { sql, type Kysely, type RawBuilder, type SqlBool, type Transaction } from 'kysely';
import { Type, type TProperties, type TSchema } from 'typebox';
import type { EXTENDED_RESOURCES } from '../access/catalogue.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import { tenantDb } from '../db/database.js';
import { once, type IdempotencyKey, type Outcome } from '../db/idempotency.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { POLYMORPHIC_PREFIX, POLYMORPHIC_TYPES, type PolymorphicType } from '../db/polymorphic.js';
import type { TenantDatabase } from '../db/types.js';
import { checkVersion, conflictOnUnique, DomainError, text, type Text } from '../errors.js';
import { likePattern, parseSort, type SortSpec } from '../db/listing.js';
import { DateTime } from '../http/schemas.js';
import type { TenantContext } from '../tenancy/directory.js';
import { oneOf } from './fields.js';

/*
 * One module for what the extended resources (notes, tasks, events, ...) share: listing with
 * pagination, search, sort and filters; create, read, partial update, soft delete and restore;
 * ETag/If-Match, Idempotency-Key and an audit row for every change; and the polymorphic
 * target (`<x>able_type` + `<x>able_id`), which must name a live row of the same tenant and
 * whose deletion hides the rows pointing at it. A resource declares only what differs
 * (a `RecordSpec`): its columns, body and response schemas, filters, rules and extra routes.
 */

export type RecordTable = (typeof EXTENDED_RESOURCES)[number];

/** A row as read: the spec's columns plus the shared ones. */
export type Row = Record<string, unknown> & { id: string; version: number; created_by: string | null };

/** Tables and columns here come from specs, not from callers, so the handle is untyped. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseDb = Kysely<any>;

export interface WriteContext {
  readonly trx: Transaction<TenantDatabase>;
  readonly tenant: TenantContext;
  readonly actor: AuditActor;
  readonly now: Date;
  /** The row being changed; undefined on create. */
  readonly before: Row | undefined;
}

/** A query-string filter: its schema and the condition on the row (aliased `r`) for a given value. */
export interface FilterSpec {
  readonly schema: TSchema;
  readonly where: (value: never, now: Date) => RawBuilder<SqlBool>;
}

export interface RecordSpec {
  /** Table name; also the permission resource (`<table>.read`, ...) and the audit entity type. */
  readonly table: RecordTable;
  /** URL segment under the tenant: `carbon-footprints`. */
  readonly path: string;
  /** What one row is called in messages and docs: `carbon footprint`. */
  readonly label: string;
  /** `$id` of the response schema in the OpenAPI document. */
  readonly schemaId: string;
  /** Prefix of the polymorphic pair (`notable` for `notable_type` + `notable_id`), if the table has one. */
  readonly target?: string;
  /** The table's own columns, read and written (shared columns and the pair excluded). */
  readonly columns: readonly string[];
  /** Columns read for the service's own use and never shown (storage keys, ciphertexts). */
  readonly internalColumns?: readonly string[];
  /** Response schema of the own columns. */
  readonly fields: TProperties;
  /** Body of POST (undefined: the resource registers its own create route). */
  readonly create?: TProperties;
  /** Body of PUT/PATCH; every field optional. */
  readonly update: TProperties;
  readonly sorts: readonly string[];
  readonly defaultSort: SortSpec;
  /** Columns `search` looks in (case-insensitive substring). */
  readonly search?: readonly string[];
  readonly filters?: Readonly<Record<string, FilterSpec>>;
  /** Checks and completes the values to write (`values`: the body's own columns; `input`: the whole body). */
  readonly write?: (values: Record<string, unknown>, input: Record<string, unknown>, ctx: WriteContext) => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Turns a row into its response body (default: the row without internal columns). */
  readonly present?: (row: Row) => Record<string, unknown>;
  /** Extra condition on lists only (e.g. only the latest revision of a file). */
  readonly listScope?: (schema: string) => RawBuilder<SqlBool>;
  /** Runs first in a delete or restore transaction, before the row is locked (to take locks in a fixed order). */
  readonly lockFirst?: (trx: Transaction<TenantDatabase>, id: string) => Promise<void>;
  /** Runs after a row is soft-deleted / before it is restored, in the same transaction. */
  readonly afterDelete?: (row: Row, ctx: WriteContext) => Promise<void>;
  readonly beforeRestore?: (row: Row, ctx: WriteContext) => Promise<void>;
  /** False: the target is set at create and never changed by an update. */
  readonly retarget?: boolean;
  /** Message of a unique violation (409), if the table has a unique index (by constraint name). */
  readonly uniqueMessage?: Text | ((constraint: string) => Text | undefined);
  /** Extra routes (aggregates, downloads, ...), registered beside the CRUD ones. */
  readonly routes?: (kit: RecordKit) => FastifyPluginAsyncTypebox;
}

export interface ListQuery {
  readonly page: number;
  readonly page_size: number;
  readonly search?: string;
  readonly sort?: string;
  readonly [filter: string]: unknown;
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

const col = (column: string) => sql.ref(`r.${column}`);

/** Filters every resource builds from: equality, bounds, booleans. */
export const filter = {
  equals(column: string, schema: TSchema): FilterSpec {
    return { schema: Type.Optional(schema), where: (value: unknown) => sql<SqlBool>`${col(column)} = ${value}` };
  },
  atLeast(column: string, schema: TSchema = DateTime): FilterSpec {
    return { schema: Type.Optional(schema), where: (value: unknown) => sql<SqlBool>`${col(column)} >= ${value}` };
  },
  atMost(column: string, schema: TSchema = DateTime): FilterSpec {
    return { schema: Type.Optional(schema), where: (value: unknown) => sql<SqlBool>`${col(column)} <= ${value}` };
  },
  custom<T>(schema: TSchema, where: (value: T, now: Date) => RawBuilder<SqlBool>): FilterSpec {
    return { schema: Type.Optional(schema), where: where as FilterSpec['where'] };
  },
};

/** `<x>able_type` / `<x>able_id` of a prefix. */
export function pairOf(prefix: string) {
  return { type: `${prefix}_type`, id: `${prefix}_id` } as const;
}

export const TARGET_TYPE = oneOf(POLYMORPHIC_TYPES, 'A tenant table');

/**
 * True when the row's target (if any) is live: a soft-deleted target hides the rows that point
 * at it, and restoring the target shows them again. Table names come from the allowlist.
 * `byKey`: the same test as a lookup of each row's target by primary key, which PostgreSQL
 * never turns into a hashed scan of the whole target table (an EXISTS it may): for a few rows
 * (search hits) rather than a whole list.
 */
function targetLive(schema: string, prefix: string, byKey = false): RawBuilder<SqlBool> {
  const { type, id } = pairOf(prefix);
  const branches = POLYMORPHIC_TYPES.map((t) => {
    const target = sql.table(`${schema}.${t}`);
    const live = byKey
      ? sql`coalesce((SELECT t.deleted_at IS NULL FROM ${target} t WHERE t.id = ${col(id)}), false)`
      : sql`EXISTS (SELECT 1 FROM ${target} t WHERE t.id = ${col(id)} AND t.deleted_at IS NULL)`;
    return sql`WHEN ${sql.lit(t)} THEN ${live}`;
  });
  return sql<SqlBool>`(CASE ${col(type)} ${sql.join(branches, sql` `)} ELSE TRUE END)`;
}

const MAX_TARGET_DEPTH = 8;

/**
 * Locks a row of an allowlisted table against deletion for the rest of the transaction, and
 * says whether it is visible: live, and (for a row that has a target itself) its own target
 * visible, up the chain.
 */
async function lockLive(trx: Kysely<TenantDatabase>, schema: string, table: string, id: string, depth = 0): Promise<boolean> {
  const prefix = POLYMORPHIC_PREFIX[table as PolymorphicType];
  const pair = prefix ? pairOf(prefix) : undefined;
  const columns = pair ? sql`${sql.ref(pair.type)} AS type, ${sql.ref(pair.id)}::text AS id` : sql`NULL::text AS type, NULL::text AS id`;
  const found = await sql<{ type: string | null; id: string | null }>`SELECT ${columns} FROM ${sql.table(`${schema}.${table}`)} WHERE id = ${id} AND deleted_at IS NULL FOR SHARE`.execute(trx);
  const row = found.rows[0];
  if (!row) return false;
  if (row.type === null || row.id === null || depth >= MAX_TARGET_DEPTH) return true;
  return lockLive(trx, schema, row.type, row.id, depth + 1);
}

/** Every id must be a live user of the tenant; otherwise 400 naming the field. */
export async function checkUsers(trx: Kysely<TenantDatabase>, field: string, ids: readonly string[]): Promise<void> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return;
  const found = await trx.selectFrom('users').select('id').where('id', 'in', unique).where('deleted_at', 'is', null).execute();
  if (found.length !== unique.length) {
    const known = new Set(found.map((u) => u.id));
    throw DomainError.invalid(field, text('reason.names_no_user', { ids: unique.filter((id) => !known.has(id)).join(', ') }));
  }
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/** CRUD over one extended table, as its spec describes it. */
export class RecordService {
  private readonly selected: readonly string[];
  private readonly pair: { type: string; id: string } | undefined;

  constructor(
    readonly db: Kysely<PlatformDatabase>,
    readonly spec: RecordSpec,
  ) {
    this.pair = spec.target ? pairOf(spec.target) : undefined;
    const pairColumns = this.pair ? [this.pair.type, this.pair.id] : [];
    this.selected = ['id', ...pairColumns, ...spec.columns, ...(spec.internalColumns ?? []), 'created_by', 'version', 'created_at', 'updated_at'].map((c) => `r.${c}`);
  }

  /** The response body of a row (with its version, which routes move to the ETag). */
  view(row: Row): Record<string, unknown> & { id: string; version: number } {
    const body = this.spec.present ? this.spec.present(row) : { ...row };
    for (const c of this.spec.internalColumns ?? []) delete body[c];
    return { ...body, id: row.id, version: row.version };
  }

  private loose(db: Kysely<TenantDatabase>): LooseDb {
    return db as unknown as LooseDb;
  }

  /** Live, visible rows of the table, aliased `r`. */
  private visible(db: Kysely<TenantDatabase>, schema: string) {
    let q = this.loose(db).selectFrom(`${this.spec.table} as r`).where('r.deleted_at', 'is', null);
    if (this.spec.target) q = q.where(targetLive(schema, this.spec.target));
    return q;
  }

  /**
   * The rows (aliased `r`) its list shows: live, their target live, within the list's scope
   * (GET search reads the same; `byKey` as in targetLive).
   */
  listed(schema: string, byKey = false): RawBuilder<SqlBool> {
    const conditions = [sql<SqlBool>`r.deleted_at IS NULL`];
    if (this.spec.target) conditions.push(targetLive(schema, this.spec.target, byKey));
    if (this.spec.listScope) conditions.push(this.spec.listScope(schema));
    return sql<SqlBool>`(${sql.join(conditions, sql` AND `)})`;
  }

  async list(tenant: TenantContext, query: ListQuery) {
    const db = tenantDb(this.db, tenant.schema);
    const now = new Date();
    let base = this.visible(db, tenant.schema);
    if (this.spec.listScope) base = base.where(this.spec.listScope(tenant.schema));
    if (query.search && this.spec.search?.length) {
      const pattern = likePattern(query.search);
      base = base.where(sql<SqlBool>`(${sql.join(this.spec.search.map((c) => sql`${col(c)} ILIKE ${pattern}`), sql` OR `)})`);
    }
    if (this.pair) {
      for (const c of [this.pair.type, this.pair.id]) if (query[c] !== undefined) base = base.where(col(c), '=', query[c]);
    }
    for (const [name, f] of Object.entries(this.spec.filters ?? {})) {
      if (query[name] !== undefined) base = base.where(f.where(query[name] as never, now));
    }
    const sort = parseSort(query.sort, this.spec.defaultSort);
    const [items, total] = await Promise.all([
      base
        .select(this.selected)
        .orderBy(sql`${col(sort.column)} ${sql.raw(sort.direction)} nulls last`)
        .orderBy('r.id')
        .limit(query.page_size)
        .offset((query.page - 1) * query.page_size)
        .execute() as Promise<Row[]>,
      base.select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow() as Promise<{ n: string }>,
    ]);
    return { items: items.map((row) => this.body(row)), total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  /** One visible row, or 404; `lock` takes it for update. */
  async one(db: Kysely<TenantDatabase>, schema: string, id: string, lock = false): Promise<Row> {
    let q = this.visible(db, schema).select(this.selected).where('r.id', '=', id);
    if (lock) q = q.forUpdate();
    const row = (await q.executeTakeFirst()) as Row | undefined;
    if (!row) throw DomainError.notFound('record', text('detail.record_not_found', { record: this.spec.table }));
    return row;
  }

  /** Runs one of the resource's own reads (an aggregate, a file's versions) on the tenant's schema. */
  read<T>(tenant: TenantContext, query: (db: Kysely<TenantDatabase>, tenant: TenantContext) => Promise<T>): Promise<T> {
    return query(tenantDb(this.db, tenant.schema), tenant);
  }

  /** Runs one of the resource's own changes (a purge) in one transaction of the tenant's schema. */
  change<T>(tenant: TenantContext, work: (trx: Transaction<TenantDatabase>, tenant: TenantContext) => Promise<T>): Promise<T> {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute((trx) => work(trx, tenant));
  }

  get(tenant: TenantContext, id: string): Promise<Row> {
    return this.one(tenantDb(this.db, tenant.schema), tenant.schema, id);
  }

  /** The target pair a write ends with, checked: both or neither, allowlisted, a live row of this tenant. */
  private async target(ctx: WriteContext, input: Record<string, unknown>, rowId: string | undefined): Promise<Record<string, unknown>> {
    if (!this.pair) return {};
    const { type, id } = this.pair;
    if (input[type] === undefined && input[id] === undefined) return {};
    const nextType = (input[type] === undefined ? ctx.before?.[type] : input[type]) ?? null;
    const nextId = (input[id] === undefined ? ctx.before?.[id] : input[id]) ?? null;
    if ((nextType === null) !== (nextId === null)) {
      const missing = nextType === null ? type : id;
      throw DomainError.invalid(missing, text('reason.required_together', { other: missing === type ? id : type }));
    }
    if (nextType === null) return { [type]: null, [id]: null };
    if (typeof nextType !== 'string' || !(POLYMORPHIC_TYPES as readonly string[]).includes(nextType)) {
      throw DomainError.invalid(type, text('reason.one_of', { values: POLYMORPHIC_TYPES.join(', ') }));
    }
    if (nextType === this.spec.table && nextId === rowId) throw DomainError.invalid(id, text('reason.names_itself', { record: this.spec.table }));
    if (!(await lockLive(ctx.trx, ctx.tenant.schema, nextType, String(nextId)))) {
      throw DomainError.invalid(id, text('reason.names_no_row', { table: nextType }));
    }
    return { [type]: nextType, [id]: nextId };
  }

  private async values(input: Record<string, unknown>, ctx: WriteContext): Promise<Record<string, unknown>> {
    const own = Object.fromEntries([...this.spec.columns, ...(this.spec.internalColumns ?? [])].filter((c) => input[c] !== undefined).map((c) => [c, input[c]]));
    return this.spec.write ? this.spec.write(own, input, ctx) : own;
  }

  private unique<T>(work: () => Promise<T>): Promise<T> {
    const message = this.spec.uniqueMessage;
    if (!message) return work();
    return conflictOnUnique(work, (constraint) => {
      const detail = typeof message === 'function' ? message(constraint) : message;
      return detail === undefined ? undefined : DomainError.conflict('record.conflict', detail);
    });
  }

  /** Inserts a row in the caller's transaction (with its audit row). */
  /** Creates a record (its view as the answer); honours an idempotency key. */
  async create(tenant: TenantContext, input: Record<string, unknown>, actor: AuditActor, idempotency?: IdempotencyKey): Promise<Outcome<ReturnType<RecordService['view']>>> {
    return once(tenantDb(this.db, tenant.schema), idempotency, async (trx) => ({ status: 201, body: this.view(await this.insert(trx, tenant, input, actor)) }));
  }

  private async insert(trx: Transaction<TenantDatabase>, tenant: TenantContext, input: Record<string, unknown>, actor: AuditActor): Promise<Row> {
    const ctx: WriteContext = { trx, tenant, actor, now: new Date(), before: undefined };
    const values = { ...(await this.values(input, ctx)), ...(await this.target(ctx, input, undefined)), created_by: actor.actorUserId };
    const row = (await this.unique(() =>
      this.loose(trx)
        .insertInto(this.spec.table)
        .values(values)
        .returning(this.selected.map((c) => c.slice(2)))
        .executeTakeFirstOrThrow(),
    )) as Row;
    await writeAudit(trx, actor, { action: `${this.spec.table}.create`, entityType: this.spec.table, entityId: row.id, after: this.body(row) });
    return row;
  }

  async update(tenant: TenantContext, id: string, input: Record<string, unknown>, expected: number | undefined, actor: AuditActor): Promise<Row> {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const before = await this.one(trx, tenant.schema, id, true);
        checkVersion(expected, before.version);
        const ctx: WriteContext = { trx, tenant, actor, now: new Date(), before };
        const values = { ...(await this.values(input, ctx)), ...(await this.target(ctx, input, id)) };
        const after = (await this.unique(() =>
          this.loose(trx)
            .updateTable(this.spec.table)
            .set({ ...values, updated_at: ctx.now, version: sql`version + 1` })
            .where('id', '=', id)
            .returning(this.selected.map((c) => c.slice(2)))
            .executeTakeFirstOrThrow(),
        )) as Row;
        await writeAudit(trx, actor, { action: `${this.spec.table}.update`, entityType: this.spec.table, entityId: id, before: this.body(before), after: this.body(after) });
        return after;
      });
  }

  async remove(tenant: TenantContext, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await this.spec.lockFirst?.(trx, id);
        const before = await this.one(trx, tenant.schema, id, true);
        checkVersion(expected, before.version);
        const now = new Date();
        await this.loose(trx).updateTable(this.spec.table).set({ deleted_at: now, updated_at: now, version: sql`version + 1` }).where('id', '=', id).execute();
        await this.spec.afterDelete?.(before, { trx, tenant, actor, now, before });
        await writeAudit(trx, actor, { action: `${this.spec.table}.delete`, entityType: this.spec.table, entityId: id, before: this.body(before) });
      });
  }

  async restore(tenant: TenantContext, id: string, actor: AuditActor): Promise<Row> {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await this.spec.lockFirst?.(trx, id);
        const row = (await this.loose(trx)
          .selectFrom(`${this.spec.table} as r`)
          .select([...this.selected, 'r.deleted_at'])
          .where('r.id', '=', id)
          .forUpdate()
          .executeTakeFirst()) as (Row & { deleted_at: Date | null }) | undefined;
        if (!row) throw DomainError.notFound('record', text('detail.record_not_found', { record: this.spec.table }));
        if (row.deleted_at === null) throw DomainError.conflict('record.not_deleted', text('detail.record_not_deleted', { record: this.spec.table }));
        if (this.pair && row[this.pair.type] !== null && !(await lockLive(trx, tenant.schema, String(row[this.pair.type]), String(row[this.pair.id])))) {
          throw DomainError.conflict('record.parent_deleted', text('detail.record_parent_deleted', { record: this.spec.table, parent: String(row[this.pair.type]) }));
        }
        const now = new Date();
        await this.spec.beforeRestore?.(row, { trx, tenant, actor, now, before: row });
        const after = (await this.unique(() =>
          this.loose(trx)
            .updateTable(this.spec.table)
            .set({ deleted_at: null, updated_at: now, version: sql`version + 1` })
            .where('id', '=', id)
            .returning(this.selected.map((c) => c.slice(2)))
            .executeTakeFirstOrThrow(),
        )) as Row;
        await writeAudit(trx, actor, { action: `${this.spec.table}.restore`, entityType: this.spec.table, entityId: id, after: this.body(after) });
        return after;
      });
  }

  /** A row's response body without its version: what lists answer and audit rows keep (secrets already left out or masked). */
  body(row: Row): Record<string, unknown> {
    const { version: _version, ...body } = this.view(row);
    return body;
  }
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

/** What a resource's extra routes get: its service, its schemas and the shared answer helpers. */
