import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'kysely';
import { Type } from 'typebox';
import type { ApiKeyService } from '../auth/api-keys.js';
import type { AuthService } from '../auth/service.js';
import type { SessionStore } from '../auth/sessions.js';
import { writeAudit } from '../audit/audit.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError } from '../errors.js';
import { DateTime, problems, SessionSchema } from '../http/schemas.js';
import { actorFrom, requirePrincipal, requireSession, requireTenant } from '../http/tenant-auth.js';
import type { PolicyReader } from '../settings/policy.js';
import { loadUserView, ProfileFields, USER_COLUMNS, UserSchema } from '../users/view.js';
import type { Kysely } from 'kysely';

export interface MeDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly auth: AuthService;
  readonly sessions: SessionStore;
  readonly apiKeys: ApiKeyService;
  readonly policies: PolicyReader;
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
      loadUserView(tenantDb(deps.db, requireTenant(request).schema), requirePrincipal(request).userId),
    );

    app.put(
      '/me',
      {
        config: self,
        schema: {
          tags: ['me'],
          summary: 'Update your own profile (partial)',
          body: Type.Object(ProfileFields, { additionalProperties: false }),
          response: { 200: UserSchema, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const tenant = requireTenant(request);
        const { userId } = requireSession(request);
        const db = tenantDb(deps.db, tenant.schema);
        const changes = Object.fromEntries(Object.entries(request.body).map(([k, v]) => [k, typeof v === 'string' ? v.trim() || null : v]));
        if (changes.timezone && !Intl.supportedValuesOf('timeZone').includes(changes.timezone)) throw DomainError.invalid('timezone', 'must be an IANA time zone');
        await db.transaction().execute(async (trx) => {
          const before = await trx.selectFrom('users').select(USER_COLUMNS).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
          if (!before) throw DomainError.notFound('user');
          if (Object.keys(changes).length === 0) return;
          const after = await trx
            .updateTable('users')
            .set({ ...changes, updated_at: new Date(), version: sql`version + 1` })
            .where('id', '=', userId)
            .returning(USER_COLUMNS)
            .executeTakeFirstOrThrow();
          await writeAudit(trx, actorFrom(request), { action: 'users.update', entityType: 'users', entityId: userId, before, after });
        });
        return loadUserView(db, userId);
      },
    );

    app.put(
      '/me/password',
      {
        config: self,
        schema: {
          tags: ['me'],
          summary: 'Change your password (needs the current one; ends your other sessions)',
          body: Type.Object({ current_password: Type.String({ maxLength: 4096 }), new_password: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404) },
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
      { config: self, schema: { tags: ['me'], summary: 'Mail a verification link to your address', response: { 202: Type.Object({}), ...problems(401, 403, 404, 409) } } },
      async (request, reply) => {
        await deps.auth.requestEmailVerification(requireTenant(request), requireSession(request).userId, actorFrom(request));
        return reply.status(202).send({});
      },
    );

    app.get(
      '/me/sessions',
      { config: self, schema: { tags: ['me'], summary: 'Your live sessions', response: { 200: Type.Object({ items: Type.Array(OwnSessionSchema) }), ...problems(401, 403, 404) } } },
      async (request) => {
        const tenant = requireTenant(request);
        const principal = requirePrincipal(request);
        const sessions = await deps.sessions.list(tenant, principal.userId, await deps.policies.policy(tenant));
        return { items: sessions.map((s) => ({ ...s, current: s.id === principal.sessionId })) };
      },
    );

    app.delete(
      '/me/sessions/:id',
      { config: self, schema: { tags: ['me'], summary: 'End one of your sessions', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const tenant = requireTenant(request);
        const principal = requireSession(request);
        const db = tenantDb(deps.db, tenant.schema);
        await db.transaction().execute(async (trx) => {
          if (!(await deps.sessions.revokeOwned(trx, principal.userId, request.params.id, 'revoked_by_user'))) throw DomainError.notFound('session');
          await writeAudit(trx, actorFrom(request), { action: 'sessions.delete', entityType: 'user_sessions', entityId: request.params.id });
        });
        await deps.sessions.forgetSessions(tenant, [request.params.id]);
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
