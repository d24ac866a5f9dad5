import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import { Type } from 'typebox';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError } from '../errors.js';
import { DateTime, pageOf, problems } from '../http/schemas.js';
import { requireTenant } from '../http/tenant-auth.js';

const EntrySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    created_at: DateTime,
    actor_user_id: Type.Union([Type.String(), Type.Null()]),
    actor_type: Type.String(),
    session_id: Type.Union([Type.String(), Type.Null()]),
    ip_address: Type.Union([Type.String(), Type.Null()]),
    user_agent: Type.Union([Type.String(), Type.Null()]),
    request_id: Type.Union([Type.String(), Type.Null()]),
    action: Type.String({ examples: ['users.update'] }),
    entity_type: Type.Union([Type.String(), Type.Null()]),
    entity_id: Type.Union([Type.String(), Type.Null()]),
    before: Type.Unknown(),
    after: Type.Unknown(),
    metadata: Type.Unknown(),
  },
  { $id: 'AuditEntry' },
);

const Query = Type.Object(
  {
    page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
    page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    actor_user_id: Type.Optional(Type.String({ format: 'uuid' })),
    entity_type: Type.Optional(Type.String({ maxLength: 100 })),
    entity_id: Type.Optional(Type.String({ maxLength: 100 })),
    action: Type.Optional(Type.String({ maxLength: 100 })),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

/** `audit-logs`: read only, newest first. There is no route that changes the trail. */
export function auditRoutes(db: Kysely<PlatformDatabase>): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/audit-logs',
      { config: { access: { permission: 'audit_logs.read' } }, schema: { tags: ['audit'], summary: 'The audit trail, newest first', querystring: Query, response: { 200: pageOf(EntrySchema), ...problems(400, 401, 403, 404) } } },
      async (request) => {
        const q = request.query;
        if (q.from && q.to && new Date(q.from) > new Date(q.to)) throw DomainError.invalid('from', 'must not be after to');
        let base = tenantDb(db, requireTenant(request).schema).selectFrom('audit_logs');
        if (q.actor_user_id) base = base.where('actor_user_id', '=', q.actor_user_id);
        if (q.entity_type) base = base.where('entity_type', '=', q.entity_type);
        if (q.entity_id) base = base.where('entity_id', '=', q.entity_id);
        if (q.action) base = base.where('action', '=', q.action);
        if (q.from) base = base.where('created_at', '>=', new Date(q.from));
        if (q.to) base = base.where('created_at', '<', new Date(q.to));
        const [items, total] = await Promise.all([
          base.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.page_size).offset((q.page - 1) * q.page_size).execute(),
          base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
        ]);
        return { items: items.map(({ updated_at: _u, ...e }) => e), total: Number(total.n), page: q.page, page_size: q.page_size };
      },
    );
  };
}
