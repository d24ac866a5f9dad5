import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { expectedVersion, setEtag } from '../http/etag.js';
import { created, idempotencyOf } from '../http/idempotency.js';
import { listQuery } from '../http/listing.js';
import { previewOf, type Preview } from '../access/preview.js';
import { ChangePreviewSchema, DateTime, DryRunQuery, pageOf, problems, SessionSchema } from '../http/schemas.js';
import { actorFrom, requirePrincipal, requireTenant } from '../http/context.js';
import { USER_SORTS, USER_STATUSES, type UserService, type VersionedUser } from './service.js';
import { ProfileFields, UserSchema } from './view.js';

const UserParams = Type.Object({ user_id: Type.String({ format: 'uuid' }) });
const Status = Type.Union(USER_STATUSES.map((s) => Type.Literal(s)));

const Profile = { ...ProfileFields, status: Type.Optional(Status) };

export const CreateUser = Type.Object(
  {
    email: Type.String({ maxLength: 254, examples: ['ada@acme.example'] }),
    password: Type.Optional(Type.String({ maxLength: 4096, description: 'Omit to invite: the user gets a set-password link by mail' })),
    roles: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 50, default: undefined, description: 'Role names; default ["user"]' })),
    ...Profile,
  },
  { additionalProperties: false },
);

export const UpdateUser = Type.Object({ email: Type.Optional(Type.String({ maxLength: 254 })), ...Profile }, { additionalProperties: false });

export const UserListQuery = listQuery(USER_SORTS, {
  status: Type.Optional(Status),
  role: Type.Optional(Type.String({ maxLength: 100 })),
  team: Type.Optional(Type.String({ format: 'uuid' })),
  created_from: Type.Optional(Type.String({ format: 'date-time' })),
  created_to: Type.Optional(Type.String({ format: 'date-time' })),
});

const LockSchema = Type.Object({ locked: Type.Boolean(), locked_until: Type.Union([DateTime, Type.Null()]), failed_login_count: Type.Integer(), lockout_count: Type.Integer() });

const OverrideParams = Type.Object({ user_id: Type.String({ format: 'uuid' }), permission: Type.String({ maxLength: 100 }) });

const OverrideSchema = Type.Object({ permission: Type.String(), effect: Type.String(), expires_at: Type.Union([DateTime, Type.Null()]) });

function view({ version: _version, ...user }: VersionedUser) {
  return user;
}

/** `users/...`: administration of a tenant's users. */
export function userRoutes(users: UserService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/users',
      { config: { access: { permission: 'users.read' } }, schema: { tags: ['users'], summary: 'List users', querystring: UserListQuery, response: { 200: pageOf(UserSchema), ...problems(400, 401, 403, 404) } } },
      // The page comes as JSON text from the database (see UserService.list).
      async (request, reply) => reply.type('application/json; charset=utf-8').send((await users.list(requireTenant(request), request.query)) as never),
    );

    app.post(
      '/users',
      {
        config: { access: { permission: 'users.create' } },
        schema: {
          tags: ['users'],
          summary: 'Create a user (or invite one: no password). Honours Idempotency-Key.',
          body: CreateUser,
          response: { 201: UserSchema, ...problems(400, 401, 403, 404, 409, 422) },
        },
      },
      async (request, reply) => {
        return created(request, reply, await users.create(requireTenant(request), request.body, actorFrom(request), idempotencyOf(request)));
      },
    );

    app.get(
      '/users/:user_id',
      { config: { access: { permission: 'users.read' } }, schema: { tags: ['users'], summary: 'Get a user', params: UserParams, response: { 200: UserSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const user = await users.get(requireTenant(request), request.params.user_id);
        setEtag(reply, user.version);
        // The response schema leaves `version` out (it is the ETag): no copy of the row without it.
        return user;
      },
    );

    for (const method of ['PUT', 'PATCH'] as const) {
      app.route({
        method,
        url: '/users/:user_id',
        config: { access: { permission: 'users.update' } },
        schema: {
          tags: ['users'],
          summary: 'Update a user (partial); honours If-Match',
          params: UserParams,
          body: UpdateUser,
          response: { 200: UserSchema, ...problems(400, 401, 403, 404, 409, 412) },
        },
        handler: async (request, reply) => {
          const user = await users.update(requireTenant(request), request.params.user_id, request.body, expectedVersion(request), actorFrom(request));
          setEtag(reply, user.version);
          return view(user);
        },
      });
    }

    app.delete(
      '/users/:user_id',
      {
        config: { access: { permission: 'users.delete' } },
        schema: { tags: ['users'], summary: 'Delete a user (soft): ends its sessions and API keys; honours If-Match', params: UserParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409, 412) } },
      },
      async (request, reply) => {
        await users.remove(requireTenant(request), requirePrincipal(request).userId, request.params.user_id, expectedVersion(request), actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/users/:user_id/restore',
      { config: { access: { permission: 'users.delete' } }, schema: { tags: ['users'], summary: 'Restore a deleted user', params: UserParams, response: { 200: UserSchema, ...problems(400, 401, 403, 404, 409) } } },
      async (request, reply) => {
        const user = await users.restore(requireTenant(request), request.params.user_id, actorFrom(request));
        setEtag(reply, user.version);
        return view(user);
      },
    );

    app.get(
      '/users/:user_id/lock',
      { config: { access: { permission: 'users.read' } }, schema: { tags: ['users'], summary: "A user's sign-in lock: failed logins in a row and lockouts", params: UserParams, response: { 200: LockSchema, ...problems(400, 401, 403, 404) } } },
      async (request) => users.lockState(requireTenant(request), request.params.user_id),
    );

    app.post(
      '/users/:user_id/unlock',
      { config: { access: { permission: 'users.update' } }, schema: { tags: ['users'], summary: 'Lift a lockout and clear the failure counts (audited)', params: UserParams, response: { 200: LockSchema, ...problems(400, 401, 403, 404) } } },
      async (request) => users.unlock(requireTenant(request), request.params.user_id, actorFrom(request)),
    );

    app.put(
      '/users/:user_id/permissions/:permission',
      {
        config: { access: { permission: 'users.update' } },
        schema: {
          tags: ['users'],
          operationId: 'setUserPermission',
          summary: 'Set a user-level permission override; dry_run=true previews it',
          params: OverrideParams,
          querystring: DryRunQuery,
          body: Type.Object({ effect: Type.Union([Type.Literal('allow'), Type.Literal('deny')]), expires_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])) }, { additionalProperties: false }),
          response: { 200: Type.Union([OverrideSchema, ChangePreviewSchema], { description: 'The override, set; with dry_run=true, what the change would do (nothing changed)' }), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const change = (preview?: Preview) =>
          users.setOverride(requireTenant(request), requirePrincipal(request).userId, request.params.user_id, request.params.permission, request.body, actorFrom(request), preview);
        return request.query.dry_run ? previewOf(change) : change();
      },
    );

    app.delete(
      '/users/:user_id/permissions/:permission',
      {
        config: { access: { permission: 'users.update' } },
        schema: {
          tags: ['users'],
          summary: 'Remove a user-level permission override; dry_run=true previews it',
          params: OverrideParams,
          querystring: DryRunQuery,
          response: { 200: ChangePreviewSchema, 204: Type.Null(), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const change = (preview?: Preview) => users.removeOverride(requireTenant(request), requirePrincipal(request).userId, request.params.user_id, request.params.permission, actorFrom(request), preview);
        if (request.query.dry_run) return previewOf(change);
        await change();
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/users/:user_id/sessions',
      { config: { access: { permission: 'sessions.read' } }, schema: { tags: ['users'], summary: "A user's live sessions", params: UserParams, response: { 200: Type.Object({ items: Type.Array(SessionSchema) }), ...problems(400, 401, 403, 404) } } },
      async (request) => ({ items: await users.sessions(requireTenant(request), request.params.user_id) }),
    );

    app.delete(
      '/users/:user_id/sessions',
      { config: { access: { permission: 'sessions.delete' } }, schema: { tags: ['users'], summary: "End all of a user's sessions", params: UserParams, response: { 200: Type.Object({ revoked: Type.Integer() }), ...problems(400, 401, 403, 404) } } },
      async (request) => ({ revoked: await users.revokeSessions(requireTenant(request), request.params.user_id, undefined, actorFrom(request)) }),
    );

    app.delete(
      '/users/:user_id/sessions/:session_id',
      {
        config: { access: { permission: 'sessions.delete' } },
        schema: {
          tags: ['users'],
          summary: "End one of a user's sessions",
          params: Type.Object({ user_id: Type.String({ format: 'uuid' }), session_id: Type.String({ format: 'uuid' }) }),
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await users.revokeSessions(requireTenant(request), request.params.user_id, request.params.session_id, actorFrom(request));
        return reply.status(204).send(null);
      },
    );
  };
}
