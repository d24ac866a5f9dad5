import { createHash, randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { sql, type ExpressionBuilder, type Kysely, type SqlBool, type Transaction } from 'kysely';
import { Type } from 'typebox';
import { writeAudit, type AuditActor } from '../../audit/audit.js';
import { LOCK_CLASS } from '../../db/platform.js';
import type { TenantDatabase } from '../../db/types.js';
import { DomainError, text } from '../../errors.js';
import { problems } from '../../http/schemas.js';
import { actorFrom, requireTenant } from '../../http/context.js';
import { DEFAULT_SETTINGS } from '../../settings/defaults.js';
import type { PolicyReader } from '../../settings/policy.js';
import type { TenantContext } from '../../tenancy/directory.js';
import { nullable, Uuid } from '../fields.js';
import { validator } from '../../http/ajv.js';
import { filter, pairOf, TARGET_TYPE, type RecordSpec, type Row, type WriteContext } from '../resource.js';
import type { RecordKit } from '../routes.js';
import type { FileStorage, StoredFile } from '../storage.js';

const FILE_NAME_MAX = 255;
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;
const PAIR = pairOf('attachable');
const QUOTA_KEY = 'attachments.quota_mb';
const DEFAULT_QUOTA_MB = Number(DEFAULT_SETTINGS.find((s) => s.key === QUOTA_KEY)!.value);

/** The tenant's attachment quota and the bytes it keeps: every version of every file not purged. */
async function quotaUse(db: Kysely<TenantDatabase>): Promise<{ quotaBytes: number; usedBytes: number }> {
  const [setting, used] = await Promise.all([
    db.selectFrom('settings').select('value').where('key', '=', QUOTA_KEY).executeTakeFirst(),
    db.selectFrom('attachments').select(sql<string>`coalesce(sum(size_bytes), 0)`.as('bytes')).where('purged_at', 'is', null).executeTakeFirstOrThrow(),
  ]);
  const mb = typeof setting?.value === 'number' ? setting.value : DEFAULT_QUOTA_MB;
  return { quotaBytes: mb * 1024 * 1024, usedBytes: Number(used.bytes) };
}

const overQuota = (quotaBytes: number) =>
  new DomainError('attachment.quota_exceeded', text('detail.quota_exceeded', { megabytes: quotaBytes / 1024 / 1024 }));

/** In the create transaction: one upload at a time per tenant counts against the quota, so two cannot both squeeze in. */
async function checkQuota(ctx: WriteContext, sizeBytes: number): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.attachmentQuota}, hashtext(${ctx.tenant.schema}))`.execute(ctx.trx);
  const { quotaBytes, usedBytes } = await quotaUse(ctx.trx);
  if (usedBytes + sizeBytes > quotaBytes) throw overQuota(quotaBytes);
}

/**
 * The most bytes an upload may have: the per-file limit, or what the quota leaves when that is
 * less (a full quota is a 413 before the file is read).
 */
async function uploadLimit(db: Kysely<TenantDatabase>, maxFileBytes: number): Promise<{ maxBytes: number; quotaBound: number | undefined }> {
  const { quotaBytes, usedBytes } = await quotaUse(db);
  const left = quotaBytes - usedBytes;
  if (left <= 0) throw overQuota(quotaBytes);
  return left < maxFileBytes ? { maxBytes: left, quotaBound: quotaBytes } : { maxBytes: maxFileBytes, quotaBound: undefined };
}

/** A file name as stored: no directories, no control characters, at most 255 characters. */
export function cleanFileName(name: string | undefined): string {
  const base = (name ?? '').split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f"]/g, '').trim().slice(0, FILE_NAME_MAX);
  return clean === '' || clean === '.' || clean === '..' ? 'file' : clean;
}

/** `attachment; filename="..."; filename*=UTF-8''...` (RFC 6266), safe for any name. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

interface Upload {
  readonly id: string;
  readonly key: string;
  readonly stored: StoredFile;
  readonly fileName: string;
  readonly contentType: string;
  readonly fields: Record<string, string>;
}

/**
 * Reads a multipart request: the `file` part is streamed to storage (hashed and counted, 413
 * beyond `maxBytes`), the other parts are short text fields. Nothing is left stored on failure.
 */
async function receive(request: FastifyRequest, storage: FileStorage, tenant: TenantContext, maxBytes: number, fieldNames: readonly string[]): Promise<Upload> {
  if (!request.isMultipart()) throw DomainError.invalid('file', text('reason.file_required'));
  const fields: Record<string, string> = {};
  let upload: Omit<Upload, 'fields'> | undefined;
  try {
    const parts = request.parts({ limits: { fileSize: maxBytes + 1, files: 1, fields: 10, fieldSize: 2000, parts: 12 } });
    for await (const part of parts) {
      if (part.type === 'file') {
        if (part.fieldname !== 'file' || upload) {
          part.file.resume();
          throw DomainError.invalid(part.fieldname, text('reason.file_part'));
        }
        const id = randomUUID();
        const key = `${tenant.schema}/${id}`;
        const stored = await storage.put(key, part.file, maxBytes);
        const type = part.mimetype?.split(';')[0]?.trim() ?? '';
        upload = { id, key, stored, fileName: cleanFileName(part.filename), contentType: CONTENT_TYPE.test(type) ? type.toLowerCase() : 'application/octet-stream' };
      } else {
        if (!fieldNames.includes(part.fieldname)) throw DomainError.invalid(part.fieldname, text('reason.file_field', { fields: fieldNames.join(', ') }));
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (error) {
    if (upload) await storage.delete(upload.key);
    const e = error as { code?: string; statusCode?: number; message?: string };
    if (error instanceof DomainError) throw error;
    if (e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FILES_LIMIT' || e.code === 'FST_FIELDS_LIMIT') throw DomainError.invalid('file', text('reason.file_limits'));
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) throw DomainError.invalid('file', text('reason.multipart_unreadable'));
    throw error;
  }
  if (!upload) throw DomainError.invalid('file', text('reason.required'));
  return { ...upload, fields };
}

/** The first version of a file names the chain: every later version points at it (`parent_id`). */
const rootOf = (row: Row) => String(row.parent_id ?? row.id);

/** The rows of one file: its first version and every later one. */
const inChain = (root: string) => (eb: ExpressionBuilder<TenantDatabase, 'attachments'>) => eb.or([eb('id', '=', root), eb('parent_id', '=', root)]);

function chainRows(db: Kysely<TenantDatabase>, root: string) {
  return db.selectFrom('attachments').selectAll().where(inChain(root));
}

/** Locks the first version of the file `id` belongs to (always taken before its other rows); undefined for an unknown id. */
async function lockFileOf(trx: Kysely<TenantDatabase>, id: string) {
  const row = await trx.selectFrom('attachments').select(['id', 'parent_id']).where('id', '=', id).executeTakeFirst();
  if (row) await trx.selectFrom('attachments').select('id').where('id', '=', row.parent_id ?? row.id).forUpdate().execute();
  return row;
}

/**
 * Attachments: files uploaded with multipart/form-data, kept in a FileStorage (local disk by
 * default) with their SHA-256 and size; new versions keep the history; delete is soft and only
 * a purge removes the bytes.
 */
export function attachments(deps: { storage: FileStorage; policies: PolicyReader }): RecordSpec {
  const { storage, policies } = deps;

  async function lockRoot(ctx: WriteContext, root: string) {
    return ctx.trx.selectFrom('attachments').select(['id', 'deleted_at']).where('id', '=', root).forUpdate().executeTakeFirst();
  }

  /** One audit row per other version a delete or restore carried along. */
  async function auditVersions(ctx: WriteContext, action: string, row: Row, others: readonly { id: string }[]) {
    for (const { id } of others) {
      await writeAudit(ctx.trx, ctx.actor, { action, entityType: 'attachments', entityId: id, metadata: { with_version: row.id } });
    }
  }

  return {
    table: 'attachments',
    path: 'attachments',
    label: 'attachment',
    schemaId: 'Attachment',
    target: 'attachable',
    retarget: false,
    columns: ['file_name', 'content_type', 'size_bytes', 'checksum_sha256', 'revision', 'parent_id'],
    internalColumns: ['storage_key'],
    fields: {
      file_name: Type.String(),
      content_type: Type.String(),
      size_bytes: Type.Integer(),
      checksum_sha256: Type.String({ description: 'SHA-256 of the bytes, hex' }),
      revision: Type.Integer({ description: 'Version number of the file: 1 for the first upload' }),
      parent_id: nullable(Uuid),
    },
    update: { file_name: Type.Optional(Type.String({ minLength: 1, maxLength: FILE_NAME_MAX, pattern: '\\S' })) },
    sorts: ['created_at', 'updated_at', 'file_name', 'size_bytes'],
    defaultSort: { column: 'created_at', direction: 'desc' },
    search: ['file_name'],
    filters: {
      content_type: filter.equals('content_type', Type.String({ maxLength: 255 })),
      checksum_sha256: filter.equals('checksum_sha256', Type.String({ pattern: '^[0-9a-f]{64}$' })),
    },
    // Lists show the latest live version of each file.
    listScope: (schema) =>
      sql<SqlBool>`NOT EXISTS (SELECT 1 FROM ${sql.table(`${schema}.attachments`)} c WHERE c.parent_id = COALESCE(r.parent_id, r.id) AND c.revision > r.revision AND c.deleted_at IS NULL)`,
    async write(values, input, ctx) {
      if (ctx.before) return typeof values.file_name === 'string' ? { ...values, file_name: cleanFileName(values.file_name) } : values;
      await checkQuota(ctx, Number(values.size_bytes ?? 0));
      const next: Record<string, unknown> = { ...values, id: input.id };
      if (typeof values.parent_id === 'string') {
        // Versions of one file are numbered one at a time, and never added to a deleted file.
        const root = await lockRoot(ctx, values.parent_id);
        if (!root || root.deleted_at !== null) throw DomainError.notFound('record', text('detail.record_not_found', { record: 'attachments' }));
        const last = await chainRows(ctx.trx, values.parent_id).clearSelect().select(sql<number>`max(revision)`.as('revision')).executeTakeFirst();
        next.revision = Number(last?.revision ?? 1) + 1;
      }
      return next;
    },
    present(row) {
      return { ...row, size_bytes: Number(row.size_bytes) };
    },
    // Deleting any version deletes the file (every version); restoring brings them back.
    // The first version's row is locked before any other, as a new version's upload does.
    async lockFirst(trx, id) {
      await lockFileOf(trx, id);
    },
    async afterDelete(row, ctx) {
      const others = await ctx.trx
        .updateTable('attachments')
        .set({ deleted_at: ctx.now, updated_at: ctx.now, version: sql`version + 1` })
        .where(inChain(rootOf(row)))
        .where('deleted_at', 'is', null)
        .returning('id')
        .execute();
      await auditVersions(ctx, 'attachments.delete', row, others);
    },
    async beforeRestore(row, ctx) {
      const chain = await chainRows(ctx.trx, rootOf(row)).execute();
      if (chain.some((r) => r.purged_at !== null)) throw DomainError.conflict('attachment.purged');
      const others = await ctx.trx
        .updateTable('attachments')
        .set({ deleted_at: null, updated_at: ctx.now, version: sql`version + 1` })
        .where(inChain(rootOf(row)))
        .where('id', '!=', row.id)
        .where('deleted_at', '=', row.deleted_at as Date)
        .returning('id')
        .execute();
      await auditVersions(ctx, 'attachments.restore', row, others);
    },
    routes: (kit) => attachmentRoutes(kit, storage, policies),
  };
}

/** A file's live versions, newest first. */
function liveVersions(db: Kysely<TenantDatabase>, root: string) {
  return chainRows(db, root).where('deleted_at', 'is', null).orderBy('revision', 'desc').execute();
}

/** Marks every version of a deleted file purged (audited) and returns the storage keys whose bytes may go. */
async function purge(trx: Transaction<TenantDatabase>, id: string, actor: AuditActor): Promise<{ id: string; storage_key: string }[]> {
  if (!(await lockFileOf(trx, id))) throw DomainError.notFound('record', text('detail.record_not_found', { record: 'attachments' }));
  const row = await trx.selectFrom('attachments').select(['id', 'parent_id', 'deleted_at', 'purged_at']).where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
  if (row.deleted_at === null) throw DomainError.conflict('attachment.not_purgeable', text('detail.purge_not_deleted'));
  const root = row.parent_id ?? row.id;
  const chain = await trx
    .selectFrom('attachments')
    .select(['id', 'storage_key'])
    .where(inChain(root))
    .where('deleted_at', 'is not', null)
    .where('purged_at', 'is', null)
    .forUpdate()
    .execute();
  if (chain.length === 0) throw DomainError.conflict('attachment.not_purgeable', text('detail.already_purged'));
  const now = new Date();
  await trx.updateTable('attachments').set({ purged_at: now, updated_at: now, version: sql`version + 1` }).where('id', 'in', chain.map((r) => r.id)).execute();
  await writeAudit(trx, actor, { action: 'attachments.purge', entityType: 'attachments', entityId: root, metadata: { versions: chain.map((r) => r.id) } });
  return chain;
}

function attachmentRoutes(kit: RecordKit, storage: FileStorage, policies: PolicyReader) {
  const { service, response, params } = kit;
  const fingerprint = (upload: Upload) => createHash('sha256').update(JSON.stringify([upload.stored.sha256, upload.fileName, upload.contentType, upload.fields])).digest('hex');

  /** Receives an upload within the per-file limit and what the tenant's quota leaves (413 naming the one that bound). */
  async function receiveWithin(request: FastifyRequest, tenant: TenantContext, maxFileBytes: number, fieldNames: readonly string[]) {
    const { maxBytes, quotaBound } = await service.read(tenant, (db) => uploadLimit(db, maxFileBytes));
    try {
      return await receive(request, storage, tenant, maxBytes, fieldNames);
    } catch (error) {
      if (quotaBound !== undefined && error instanceof DomainError && error.kind === 'payload_too_large') throw overQuota(quotaBound);
      throw error;
    }
  }

  /** Creates the row for an upload; the stored bytes go away if the row is not made (or was made by an earlier request). */
  async function store(request: FastifyRequest, reply: Parameters<RecordKit['create']>[1], upload: Upload, input: Record<string, unknown>, collection?: string) {
    try {
      const body = await kit.create(
        request,
        reply,
        { ...input, id: upload.id, storage_key: upload.key, file_name: input.file_name ?? upload.fileName, content_type: upload.contentType, size_bytes: upload.stored.sizeBytes, checksum_sha256: upload.stored.sha256 },
        { fingerprint: fingerprint(upload), collection },
      );
      if (body.id !== upload.id) await storage.delete(upload.key);
      return body;
    } catch (error) {
      await storage.delete(upload.key);
      throw error;
    }
  }

  // The multipart body is read as a stream by the handler; its schema is for the OpenAPI document.
  const paramsValidator = validator('array');
  const streamedBody = ({ schema, httpPart }: { schema: object; httpPart?: string }) => (httpPart === 'body' ? () => true : paramsValidator.compile(schema));
  const UploadBody = (withTarget: boolean) =>
    Type.Object({
      file: Type.String({ format: 'binary', description: 'The file (one part named `file`)' }),
      ...(withTarget ? { attachable_type: Type.Optional(TARGET_TYPE), attachable_id: Type.Optional(Uuid) } : {}),
    });
  const Download = {
    200: { description: 'The bytes, with the stored Content-Type', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
    304: { description: 'Not modified (If-None-Match matched the ETag)', type: 'null' },
  };

  const plugin: FastifyPluginAsyncTypebox = async (app) => {
    // Sizes are checked against the tenant's setting while the file streams (413).
    await app.register(multipart, { throwFileSizeLimit: false, limits: { fileSize: 1024 * 1024 * 1024 + 1, files: 1, fields: 10, parts: 12 } });

    app.post(
      '/attachments',
      {
        config: { access: { permission: 'attachments.create' } },
        schema: {
          tags: ['attachments'],
          summary: 'Upload a file (multipart/form-data: `file`, and optionally attachable_type + attachable_id). Larger than attachments.max_size_mb, or beyond the tenant\'s attachments.quota_mb: 413. Honours Idempotency-Key.',
          consumes: ['multipart/form-data'],
          body: UploadBody(true),
          response: { 201: response, ...problems(400, 401, 403, 404, 413, 415, 422) },
        },
        validatorCompiler: streamedBody,
      },
      async (request, reply) => {
        const tenant = requireTenant(request);
        const policy = await policies.policy(tenant);
        const upload = await receiveWithin(request, tenant, policy.attachmentsMaxBytes, [PAIR.type, PAIR.id]);
        const type = upload.fields[PAIR.type];
        const id = upload.fields[PAIR.id];
        if (id !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
          await storage.delete(upload.key);
          throw DomainError.invalid(PAIR.id, text('reason.uuid'));
        }
        return store(request, reply, upload, { [PAIR.type]: type, [PAIR.id]: id });
      },
    );

    app.post(
      '/attachments/:id/versions',
      {
        config: { access: { permission: 'attachments.update' } },
        schema: {
          tags: ['attachments'],
          summary: 'Upload a new version of a file (multipart/form-data: `file`); the earlier versions stay in its history (and count against attachments.quota_mb). Honours Idempotency-Key.',
          consumes: ['multipart/form-data'],
          params,
          body: UploadBody(false),
          response: { 201: response, ...problems(400, 401, 403, 404, 413, 415, 422) },
        },
        validatorCompiler: streamedBody,
      },
      async (request, reply) => {
        const tenant = requireTenant(request);
        const current = await service.get(tenant, (request.params as { id: string }).id);
        const policy = await policies.policy(tenant);
        const upload = await receiveWithin(request, tenant, policy.attachmentsMaxBytes, []);
        const root = await service.get(tenant, rootOf(current)).catch(async (error: unknown) => {
          await storage.delete(upload.key);
          throw error;
        });
        const base = request.url.split('?')[0]!.replace(/\/[^/]+\/versions$/, '');
        return store(request, reply, upload, { parent_id: root.id, [PAIR.type]: root[PAIR.type] ?? undefined, [PAIR.id]: root[PAIR.id] ?? undefined }, base);
      },
    );

    app.get(
      '/attachments/:id/versions',
      {
        config: { access: { permission: 'attachments.read' } },
        schema: { tags: ['attachments'], summary: 'Every version of a file, newest first', params, response: { 200: Type.Object({ items: Type.Array(response) }), ...problems(400, 401, 403, 404) } },
      },
      async (request) => {
        const tenant = requireTenant(request);
        const row = await service.get(tenant, (request.params as { id: string }).id);
        const rows = await service.read(tenant, (db) => liveVersions(db, rootOf(row)));
        return { items: rows.map((r) => service.body(r as unknown as Row)) };
      },
    );

    app.get(
      '/attachments/:id/content',
      {
        config: { access: { permission: 'attachments.read' } },
        schema: {
          tags: ['attachments'],
          summary: 'Download the bytes: Content-Type as uploaded, Content-Disposition attachment with the file name, ETag = SHA-256 (If-None-Match gives 304)',
          params,
          response: { ...Download, ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const row = await service.get(requireTenant(request), (request.params as { id: string }).id);
        const etag = `"${String(row.checksum_sha256)}"`;
        reply.header('etag', etag).header('cache-control', 'private, no-cache').header('x-content-type-options', 'nosniff').header('content-security-policy', "sandbox; default-src 'none'");
        const inm = request.headers['if-none-match'];
        if (typeof inm === 'string' && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) return reply.status(304).send();
        const stream = await storage.get(String(row.storage_key));
        return reply
          .type(String(row.content_type))
          .header('content-length', String(row.size_bytes))
          .header('content-disposition', contentDisposition(String(row.file_name)))
          .send(stream);
      },
    );

    app.post(
      '/attachments/:id/purge',
      {
        config: { access: { permission: 'attachments.delete' } },
        schema: { tags: ['attachments'], summary: 'Remove the bytes of a deleted file (every version) for good; the rows stay, marked purged', params, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409) } },
      },
      async (request, reply) => {
        const tenant = requireTenant(request);
        const id = (request.params as { id: string }).id;
        const purged = await service.change(tenant, (trx) => purge(trx, id, actorFrom(request)));
        // Bytes go once the rows say so: a failure here leaves unreferenced bytes, never rows without them.
        for (const r of purged) {
          await storage.delete(r.storage_key).catch((error: unknown) => request.log.error({ err: error, key: r.storage_key }, 'could not remove purged attachment bytes'));
        }
        return reply.status(204).send(null);
      },
    );
  };
  return plugin;
}
