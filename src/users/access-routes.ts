import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { previewOf, type Preview } from '../access/preview.js';
import { ChangePreviewSchema, DateTime, DryRunQuery, problems } from '../http/schemas.js';
import { actorFrom, requirePrincipal, requireTenant } from '../http/context.js';
import type { UserAccessService } from './access.js';
import { UserSchema } from './view.js';

const UserParams = Type.Object({ user_id: Type.String({ format: 'uuid' }) });

const ReasonSchema = Type.Object({
  source: Type.Union([Type.Literal('override'), Type.Literal('role'), Type.Literal('default')]),
  permission: Type.Optional(Type.String()),
  effect: Type.Optional(Type.String()),
  role: Type.Optional(Type.String()),
  priority: Type.Optional(Type.Integer()),
  expires_at: Type.Optional(Type.Union([DateTime, Type.Null()])),
});

/** Users' roles and permissions (the rest of `users/...` builds on these). */
export const SetRolesBody = Type.Object({ roles: Type.Array(Type.String({ maxLength: 100 }), { maxItems: 50 }) }, { additionalProperties: false });

export function userAccessRoutes(users: UserAccessService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/users/:user_id/permissions',
      {
        config: { access: { permission: 'users.read' } },
        schema: {
          tags: ['users'],
          summary: "A user's overrides and effective permissions, each decision with its reason",
          params: UserParams,
          response: {
            200: Type.Object({
              user_id: Type.String(),
              roles: Type.Array(Type.Object({ name: Type.String(), priority: Type.Integer() })),
              overrides: Type.Array(Type.Object({ permission: Type.String(), effect: Type.String(), expires_at: Type.Union([DateTime, Type.Null()]), active: Type.Boolean() })),
              effective: Type.Array(Type.String()),
              decisions: Type.Array(Type.Object({ permission: Type.String(), allowed: Type.Boolean(), reason: ReasonSchema })),
            }),
            ...problems(400, 401, 403, 404),
          },
        },
      },
      async (request) => users.explain(requireTenant(request), request.params.user_id),
    );

    app.put(
      '/users/:user_id/roles',
      {
        config: { access: { permission: 'users.update' } },
        schema: {
          tags: ['users'],
          summary: "Replace a user's roles; dry_run=true previews it",
          params: UserParams,
          querystring: DryRunQuery,
          body: SetRolesBody,
          response: { 200: Type.Union([UserSchema, ChangePreviewSchema], { description: 'The user, with the roles set; with dry_run=true, what the change would do (nothing changed)' }), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const change = (preview?: Preview) => users.setRoles(requireTenant(request), requirePrincipal(request).userId, request.params.user_id, request.body.roles, actorFrom(request), preview);
        return request.query.dry_run ? previewOf(change) : change();
      },
    );
  };
}
