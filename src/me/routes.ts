import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ApiKeyService } from '../auth/api-keys.js';
import { selfProof } from '../auth/routes.js';
import type { AuthService } from '../auth/service.js';
import { DateTime, problems, SessionSchema } from '../http/schemas.js';
import { actorFrom, requirePrincipal, requireSession, requireTenant } from '../http/context.js';
import type { UserService } from '../users/service.js';
import { ProfileFields, UserSchema } from '../users/view.js';

/** Self-service goes through the same services as administration: one rule, one message. */
export interface MeDeps {
  readonly users: UserService;
  readonly auth: AuthService;
  readonly apiKeys: ApiKeyService;
}

const self = { access: 'self' as const };
const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

const OwnSessionSchema = Type.Object({ ...SessionSchema.properties, current: Type.Boolean() });

const ApiKeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  prefix: Type.String({ description: 'Visible part of the key (ssk_<prefix>_...)' }),
  permissions: Type.Array(Type.String()),
  expires_at: Type.Union([DateTime, Type.Null()]),
  last_used_at: Type.Union([DateTime, Type.Null()]),
  created_at: DateTime,
});

/** Self-service: the caller's own account, sessions and API keys; no permission needed. */
export function meRoutes(deps: MeDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/me', { config: self, schema: { tags: ['me'], summary: 'The current user', response: { 200: UserSchema, ...problems(401, 403, 404) } } }, async (request) =>
      deps.users.get(requireTenant(request), requirePrincipal(request).userId),
    );

    app.put(
      '/me',
      {
        config: self,
        schema: {
          tags: ['me'],
          operationId: 'updateMe',
          summary: 'Update your own profile (partial)',
          body: Type.Object(ProfileFields, { additionalProperties: false }),
          response: { 200: UserSchema, ...problems(400, 401, 403, 404, 409) },
        },
      },
      // The same update as an administrator's (one profile validation), on yourself.
      async (request) => deps.users.update(requireTenant(request), requireSession(request).userId, request.body, undefined, actorFrom(request)),
    );

    app.put(
      '/me/password',
      {
        config: selfProof,
        schema: {
          tags: ['me'],
          summary: 'Change your password (needs the current one; ends your other sessions)',
          body: Type.Object({ current_password: Type.String({ maxLength: 4096 }), new_password: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 429) },
        },
      },
      async (request, reply) => {
        const principal = requireSession(request);
        await deps.auth.changePassword(requireTenant(request), principal.userId, principal.sessionId, request.body, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/me/email-verification',
      { config: self, schema: { tags: ['me'], operationId: 'requestEmailVerification', summary: 'Mail a verification link to your address', response: { 202: Type.Object({}), ...problems(401, 403, 404, 409) } } },
      async (request, reply) => {
        await deps.auth.requestEmailVerification(requireTenant(request), requireSession(request).userId, actorFrom(request));
        return reply.status(202).send({});
      },
    );

    app.get(
      '/me/sessions',
      { config: self, schema: { tags: ['me'], summary: 'Your live sessions', response: { 200: Type.Object({ items: Type.Array(OwnSessionSchema) }), ...problems(401, 403, 404) } } },
      async (request) => {
        const principal = requirePrincipal(request);
        const sessions = await deps.users.sessions(requireTenant(request), principal.userId);
        return { items: sessions.map((s) => ({ ...s, current: s.id === principal.sessionId })) };
      },
    );

    app.delete(
      '/me/sessions/:id',
      { config: self, schema: { tags: ['me'], summary: 'End one of your sessions', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        await deps.users.revokeSessions(requireTenant(request), requireSession(request).userId, request.params.id, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/me/api-keys',
      { config: self, schema: { tags: ['me'], summary: 'Your API keys (never the secret)', response: { 200: Type.Object({ items: Type.Array(ApiKeySchema) }), ...problems(401, 403, 404) } } },
      async (request) => ({ items: await deps.apiKeys.list(requireTenant(request), requirePrincipal(request).userId) }),
    );

    app.post(
      '/me/api-keys',
      {
        config: self,
        schema: {
          tags: ['me'],
          summary: 'Create an API key scoped to some of your permissions; the key is shown only in this response',
          body: Type.Object(
            {
              name: Type.String({ maxLength: 200 }),
              permissions: Type.Array(Type.String({ maxLength: 100 }), { maxItems: 200, examples: [['users.read', 'notes.*']] }),
              expires_at: Type.Optional(Type.String({ format: 'date-time' })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Object({ ...ApiKeySchema.properties, key: Type.String({ description: 'Send as X-API-Key; shown once' }) }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const principal = requireSession(request);
        return reply.status(201).send(await deps.apiKeys.create(requireTenant(request), principal.userId, request.body, actorFrom(request)));
      },
    );

    app.delete(
      '/me/api-keys/:id',
      { config: self, schema: { tags: ['me'], summary: 'Revoke one of your API keys', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        await deps.apiKeys.revoke(requireTenant(request), requireSession(request).userId, request.params.id, actorFrom(request));
        return reply.status(204).send(null);
      },
    );
  };
}
