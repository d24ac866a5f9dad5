import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import type { JwtKeys } from '../auth/keys.js';
import { DateTime, PaginationQuery, pageOf, problems } from '../http/schemas.js';
import { requireSystemToken } from '../auth/system-hook.js';
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

const TenantIdParams = Type.Object({ tenant_id: Type.String({ maxLength: 64, description: 'Tenant UUID or slug' }) });

/** Platform routes: system token only. */
export function tenantRoutes(service: TenantService, keys: JwtKeys): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('preHandler', requireSystemToken(keys));
    const security = [{ bearer: [] }];

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
        schema: { tags: ['platform'], summary: 'List tenants', security, querystring: PaginationQuery, response: { 200: pageOf(Tenant), ...problems(400, 401, 403) } },
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
  };
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
