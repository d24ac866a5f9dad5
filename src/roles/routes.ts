import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PERMISSION_CATALOGUE } from '../access/catalogue.js';
import { previewOf, type Preview } from '../access/preview.js';
import { expectedVersion, setEtag } from '../http/etag.js';
import { created, idempotencyOf } from '../http/idempotency.js';
import { listQuery } from '../http/listing.js';
import { ChangePreviewSchema, DateTime, DryRunQuery, pageOf, problems } from '../http/schemas.js';
import { actorFrom, requireTenant } from '../http/context.js';
import { ROLE_SORTS, type RoleService, type RoleView } from './service.js';

const RoleSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String({ examples: ['auditor'] }),
    description: Type.Union([Type.String(), Type.Null()]),
    priority: Type.Integer(),
    is_system: Type.Boolean(),
    permissions: Type.Array(Type.String(), { examples: [['audit_logs.read', 'users.read']] }),
    denied_permissions: Type.Array(Type.String()),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'Role' },
);

const Names = Type.Array(Type.String({ maxLength: 100 }), { maxItems: 200 });
const RoleBody = {
  description: Type.Optional(Type.Union([Type.String({ maxLength: 1000 }), Type.Null()])),
  priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  permissions: Type.Optional(Names),
  denied_permissions: Type.Optional(Names),
};
export const CreateRole = Type.Object({ name: Type.String({ maxLength: 100 }), ...RoleBody }, { additionalProperties: false });
const IdParams = Type.Object({ role_id: Type.String({ format: 'uuid' }) });

function view({ version: _v, ...role }: RoleView) {
  return role;
}

/** `roles/...` and the permission catalogue. */
export function roleRoutes(roles: RoleService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/permissions',
      {
        config: { access: { permission: 'permissions.read' } },
        schema: {
          tags: ['roles'],
          summary: 'The permission catalogue',
          response: { 200: Type.Object({ items: Type.Array(Type.Object({ name: Type.String(), resource: Type.String(), action: Type.String(), description: Type.String() })) }), ...problems(401, 403, 404) },
        },
      },
      async () => ({ items: [...PERMISSION_CATALOGUE] }),
    );

    app.get(
      '/roles',
      { config: { access: { permission: 'roles.read' } }, schema: { tags: ['roles'], summary: 'List roles', querystring: listQuery(ROLE_SORTS, {}), response: { 200: pageOf(RoleSchema), ...problems(400, 401, 403, 404) } } },
      async (request) => {
        const page = await roles.list(requireTenant(request), request.query);
        return { ...page, items: page.items.map(view) };
      },
    );

    app.post(
      '/roles',
      {
        config: { access: { permission: 'roles.create' } },
        schema: {
          tags: ['roles'],
          summary: 'Create a custom role (only with permissions you hold). Honours Idempotency-Key.',
          body: CreateRole,
          response: { 201: RoleSchema, ...problems(400, 401, 403, 404, 409, 422) },
        },
      },
      async (request, reply) => {
        return created(request, reply, await roles.create(requireTenant(request), request.body, actorFrom(request), idempotencyOf(request)));
      },
    );

    app.get(
      '/roles/:role_id',
      { config: { access: { permission: 'roles.read' } }, schema: { tags: ['roles'], summary: 'Get a role', params: IdParams, response: { 200: RoleSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const role = await roles.get(requireTenant(request), request.params.role_id);
        setEtag(reply, role.version);
        return view(role);
      },
    );

    for (const method of ['PUT', 'PATCH'] as const) {
      app.route({
        method,
        url: '/roles/:role_id',
        config: { access: { permission: 'roles.update' } },
        schema: {
          tags: ['roles'],
          summary: 'Update a role (partial; system roles cannot be renamed); honours If-Match; dry_run=true previews it',
          params: IdParams,
          querystring: DryRunQuery,
          body: Type.Object({ name: Type.Optional(Type.String({ maxLength: 100 })), ...RoleBody }, { additionalProperties: false }),
          response: { 200: Type.Union([RoleSchema, ChangePreviewSchema], { description: 'The role, updated; with dry_run=true, what the change would do (nothing changed)' }), ...problems(400, 401, 403, 404, 409, 412) },
        },
        handler: async (request, reply) => {
          const change = (preview?: Preview) => roles.update(requireTenant(request), request.params.role_id, request.body, expectedVersion(request), actorFrom(request), preview);
          if (request.query.dry_run) return previewOf(change);
          const role = await change();
          setEtag(reply, role.version);
          return view(role);
        },
      });
    }

    app.delete(
      '/roles/:role_id',
      {
        config: { access: { permission: 'roles.delete' } },
        schema: {
          tags: ['roles'],
          summary: 'Delete a custom role that nobody holds; honours If-Match; dry_run=true previews it',
          params: IdParams,
          querystring: DryRunQuery,
          response: { 200: ChangePreviewSchema, 204: Type.Null(), ...problems(400, 401, 403, 404, 409, 412) },
        },
      },
      async (request, reply) => {
        const change = (preview?: Preview) => roles.remove(requireTenant(request), request.params.role_id, expectedVersion(request), actorFrom(request), preview);
        if (request.query.dry_run) return previewOf(change);
        await change();
        return reply.status(204).send(null);
      },
    );
  };
}
