import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Type, type TSchema } from 'typebox';
import type { JwtKeys } from '../auth/keys.js';
import { DateTime, PaginationQuery, pageOf, problems } from '../http/schemas.js';
import { requireSystemToken } from '../auth/system-hook.js';
import { DomainError, text } from '../errors.js';
import type { AuditActor } from '../audit/audit.js';
import type { TenantLifecycle } from './lifecycle.js';
import type { TenantService } from './service.js';

const Admin = Type.Object(
  {
    email: Type.String({ maxLength: 254, examples: ['admin@acme.example'] }),
    password: Type.String({ maxLength: 1024, examples: ['correct horse battery staple'] }),
    first_name: Type.Optional(Type.String({ maxLength: 200 })),
    last_name: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false, description: 'First admin user of the tenant (password hashed with argon2id)' },
);

const Tenant = Type.Object({
  id: Type.String({ format: 'uuid' }),
  slug: Type.String({ examples: ['acme'] }),
  name: Type.String(),
  schema_name: Type.String({ examples: ['tenant_acme'] }),
  status: Type.String({ description: 'Schema state: initializing, ready, failed (absent before initialization)' }),
  tenant_status: Type.String({ description: "The registry's status of the tenant (e.g. active)" }),
  schema_version: Type.Integer(),
  last_error: Type.Union([Type.String(), Type.Null()]),
  created_at: DateTime,
  updated_at: DateTime,
});

const TenantListQuery = Type.Object(
  {
    ...PaginationQuery.properties,
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Case-insensitive text in the slug or the name' })),
    status: Type.Optional(Type.Unsafe<'active' | 'suspended'>({ type: 'string', enum: ['active', 'suspended'], description: "The registry's status" })),
  },
  { additionalProperties: false },
);

const TenantIdParams = Type.Object({ tenant_id: Type.String({ maxLength: 64, description: 'Tenant UUID or slug' }) });

const Backup = Type.Object({
  id: Type.String({ format: 'uuid' }),
  tenant_id: Type.String({ format: 'uuid' }),
  tenant_slug: Type.String(),
  kind: Type.Union([Type.Literal('manual'), Type.Literal('scheduled'), Type.Literal('final')]),
  created_at: DateTime,
  size_bytes: Type.Integer({ description: 'Size of the gzip tar archive' }),
  sha256: Type.String({ description: 'SHA-256 of the archive file, checked again before a restore' }),
  schema_version: Type.Integer(),
});

const NewSlug = Type.String({ maxLength: 64, examples: ['acme_copy'], description: '^[a-z][a-z0-9_]{1,40}$; "-" becomes "_"' });

/** Archives arrive as the raw body: read as a stream by the handler, never buffered. */
const ARCHIVE_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar+gzip', 'application/octet-stream'];

/** The platform caller as a tenant's audit records it. */
function platformActor(request: FastifyRequest): AuditActor {
  return { actorUserId: null, actorType: 'system', sessionId: null, ip: request.ip, userAgent: request.headers['user-agent']?.slice(0, 500) ?? null, requestId: request.id };
}

/** Platform routes: system token only. */
export function tenantRoutes(service: TenantService, lifecycle: TenantLifecycle, keys: JwtKeys): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('preHandler', requireSystemToken(keys));
    const security = [{ bearer: [] }];
    app.addContentTypeParser(ARCHIVE_TYPES, (_request, payload, done) => done(null, payload));

    app.post(
      '',
      {
        schema: {
          tags: ['platform'],
          summary: 'Register a tenant and provision its schema',
          security,
          body: Type.Object(
            {
              slug: Type.String({ maxLength: 64, examples: ['acme'], description: '^[a-z][a-z0-9_]{1,40}$; "-" becomes "_"' }),
              name: Type.Optional(Type.String({ maxLength: 200, examples: ['Acme Inc.'] })),
              admin: Type.Optional(Admin),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Object({ ...Tenant.properties, admin_user_id: Type.Union([Type.String(), Type.Null()]) }), ...problems(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const tenant = await service.create(request.body);
        return reply.status(201).header('location', `/api/v1/tenants/${tenant.id}`).send(tenant);
      },
    );

    app.get(
      '',
      {
        schema: { tags: ['platform'], summary: 'List tenants, oldest first', security, querystring: TenantListQuery, response: { 200: pageOf(Tenant), ...problems(400, 401, 403) } },
      },
      async (request) => service.list(request.query),
    );

    app.get(
      '/:tenant_id',
      { schema: { tags: ['platform'], summary: 'Get a tenant', security, params: TenantIdParams, response: { 200: Tenant, ...problems(400, 401, 403, 404) } } },
      async (request) => service.get(request.params.tenant_id),
    );

    app.post(
      '/:tenant_id/initialize',
      {
        schema: {
          tags: ['platform'],
          summary: "Create or complete the tenant's schema (idempotent)",
          security,
          params: TenantIdParams,
          body: Type.Optional(Type.Object({ admin: Type.Optional(Admin) }, { additionalProperties: false })),
          response: {
            200: Type.Object({
              tenant_id: Type.String({ format: 'uuid' }),
              schema_name: Type.String(),
              status: Type.Literal('ready'),
              schema_version: Type.Integer(),
              tables: Type.Array(Type.String()),
              created_tables: Type.Array(Type.String()),
              admin_user_id: Type.Union([Type.String(), Type.Null()]),
              duration_ms: Type.Integer(),
            }),
            ...problems(400, 401, 403, 404),
          },
        },
      },
      async (request) => service.initialize(request.params.tenant_id, request.body?.admin),
    );

    app.patch(
      '/:tenant_id',
      {
        schema: {
          tags: ['platform'],
          summary: 'Suspend or resume a tenant: a suspended tenant answers 403 (tenant.suspended) on every tenant route at once; its realtime sockets close',
          security,
          params: TenantIdParams,
          body: Type.Object({ status: Type.Union([Type.Literal('active'), Type.Literal('suspended')]) }, { additionalProperties: false }),
          response: { 200: Tenant, ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => lifecycle.setStatus(request.params.tenant_id, request.body.status, platformActor(request)),
    );

    app.delete(
      '/:tenant_id',
      {
        schema: {
          tags: ['platform'],
          summary: 'Delete a tenant: a final backup first (unless backup=false), then its registration, schema, database role and attachment files',
          security,
          params: TenantIdParams,
          querystring: Type.Object({ backup: Type.Boolean({ default: true, description: 'Take a final backup first (kept under the tenant id in BACKUP_DIR)' }) }, { additionalProperties: false }),
          response: {
            200: Type.Object({ id: Type.String({ format: 'uuid' }), slug: Type.String(), backup: Type.Union([Backup, Type.Null()]) }),
            ...problems(400, 401, 403, 404, 409),
          },
        },
      },
      async (request) => lifecycle.delete(request.params.tenant_id, { backup: request.query.backup }),
    );

    app.get(
      '/:tenant_id/export',
      {
        schema: {
          tags: ['platform'],
          summary: 'Export the tenant as a gzip tar archive (manifest.json, tables/<table>.ndjson, attachments/<sha256>), from one consistent snapshot',
          security,
          params: TenantIdParams,
          produces: ['application/gzip'],
          response: { 200: Type.Unsafe({ type: 'string', format: 'binary', description: 'The archive' }), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const prepared = await lifecycle.export(request.params.tenant_id);
        const day = prepared.manifest.created_at.slice(0, 10);
        return reply
          .type('application/gzip')
          .header('content-disposition', `attachment; filename="${prepared.manifest.tenant.slug}-${day}.tar.gz"`)
          .header('x-schema-version', String(prepared.manifest.schema_version))
          .send(prepared.stream());
      },
    );

    app.post(
      '/import',
      {
        schema: {
          tags: ['platform'],
          operationId: 'importTenant',
          summary: 'Create a tenant from an export archive (the body, application/gzip): checked whole first (a broken archive, a bad checksum, a newer schema version: 400), older schema versions migrated; users keep their passwords',
          security,
          querystring: Type.Object({ slug: NewSlug, name: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
          consumes: ARCHIVE_TYPES.slice(0, 1),
          body: Type.Unsafe({ type: 'string', format: 'binary', description: 'The archive' }),
          response: { 201: Tenant, ...problems(400, 401, 403, 409, 413, 415) },
        },
        // The archive is a stream: no schema applies to it.
        validatorCompiler: ({ httpPart }) => (httpPart === 'body' ? () => true : undefined) as never,
      },
      async (request, reply) => {
        const body = request.body as unknown;
        if (!isStream(body)) throw DomainError.invalid('body', text('reason.archive_body'), 'request.unsupported_media_type');
        const tenant = await lifecycle.import(body, request.query, { actor: platformActor(request) });
        return reply.status(201).header('location', `/api/v1/tenants/${tenant.id}`).send(tenant);
      },
    );

    app.post(
      '/:tenant_id/fork',
      {
        schema: {
          tags: ['platform'],
          summary: 'Copy the tenant inside the database into a new slug: without sessions, API keys, webhook endpoints or pending events; its channels left inactive',
          security,
          params: TenantIdParams,
          body: Type.Object({ slug: NewSlug, name: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
          response: { 201: Tenant, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const tenant = await lifecycle.fork(request.params.tenant_id, request.body, platformActor(request));
        return reply.status(201).header('location', `/api/v1/tenants/${tenant.id}`).send(tenant);
      },
    );

    app.post(
      '/:tenant_id/backups',
      {
        schema: { tags: ['platform'], summary: 'Back the tenant up now (an export archive into the backup store)', security, params: TenantIdParams, response: { 201: Backup, ...problems(400, 401, 403, 404, 409) } },
      },
      async (request, reply) => reply.status(201).send(await lifecycle.backup(request.params.tenant_id)),
    );

    app.get(
      '/:tenant_id/backups',
      {
        schema: {
          tags: ['platform'],
          summary: "The tenant's backups, newest first (a deleted tenant's stay listed under its id)",
          security,
          params: TenantIdParams,
          response: { 200: Type.Object({ items: Type.Array(Backup) }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => ({ items: await lifecycle.backups(request.params.tenant_id) }),
    );

    app.post(
      '/:tenant_id/backups/:backup_id/restore',
      {
        schema: {
          tags: ['platform'],
          summary: "Return the tenant to a backup's state, in place and in one transaction; its sessions end and its audit records tenant.restored",
          security,
          params: Type.Object({ ...TenantIdParams.properties, backup_id: Type.String({ maxLength: 64 }) }),
          response: { 200: Tenant, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => lifecycle.restore(request.params.tenant_id, request.params.backup_id, platformActor(request)),
    );
  };
}

function isStream(value: unknown): value is Readable {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function';
}

const MigrationStateSchema = Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]);
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const SchemaMigration = Type.Object({
  schema_name: Type.String({ examples: ['tenant_acme'] }),
  slug: Nullable(Type.String()),
  tenant_id: Nullable(Type.String({ format: 'uuid' })),
  spare: Type.Boolean({ description: 'A spare schema kept ready for a new tenant' }),
  version: Type.Integer(),
  state: MigrationStateSchema,
  last_error: Nullable(Type.String()),
  started_at: Nullable(DateTime),
  finished_at: Nullable(DateTime),
  duration_ms: Nullable(Type.Integer()),
});

/** GET /api/v1/migrations: where every tenant schema stands (system token). */
export function migrationRoutes(service: TenantService, keys: JwtKeys): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('preHandler', requireSystemToken(keys));
    app.get(
      '',
      {
        schema: {
          tags: ['platform'],
          summary: 'Migration state of every tenant schema: pending, running, done or failed (a failed one is quarantined: its tenant answers 503)',
          security: [{ bearer: [] }],
          querystring: Type.Object({ ...PaginationQuery.properties, state: Type.Optional(MigrationStateSchema) }),
          response: {
            200: Type.Object({
              latest_version: Type.Integer(),
              summary: Type.Object({ pending: Type.Integer(), running: Type.Integer(), done: Type.Integer(), failed: Type.Integer() }),
              ...pageOf(SchemaMigration).properties,
            }),
            ...problems(400, 401, 403),
          },
        },
      },
      async (request) => service.migrationStates(request.query),
    );
  };
}
