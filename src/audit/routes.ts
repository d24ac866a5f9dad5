import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DateTime, pageOf, problems } from '../http/schemas.js';
import { requireTenant } from '../http/context.js';
import type { AuditService } from './service.js';

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
    seq: Type.Integer({ description: "The row's place in the tenant's audit hash chain (1, 2, 3, ...)" }),
    hash: Type.String({ description: 'SHA-256 (hex) over the previous row\'s hash and this row\'s canonical content: docs/AUDIT.md' }),
  },
  { $id: 'AuditEntry' },
);

const ChainReportSchema = Type.Object(
  {
    valid: Type.Boolean(),
    checked: Type.Integer({ description: 'Rows found intact, in chain order, before the first broken one (every row when valid)' }),
    first_invalid_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The first row that breaks the chain; null when valid, or when rows are missing from its end' }),
    first_invalid_seq: Type.Union([Type.Integer(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    head: Type.Union([Type.Object({ seq: Type.Integer(), hash: Type.String() }), Type.Null()], { description: 'The head as stored: record it elsewhere to prove later that nothing was cut from the end' }),
  },
  { $id: 'AuditChainReport' },
);

export const AuditQuery = Type.Object(
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
export function auditRoutes(audit: AuditService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/audit-logs',
      { config: { access: { permission: 'audit_logs.read' } }, schema: { tags: ['audit'], summary: 'The audit trail, newest first', querystring: AuditQuery, response: { 200: pageOf(EntrySchema), ...problems(400, 401, 403, 404) } } },
      async (request) => audit.list(requireTenant(request), request.query),
    );
    app.get(
      '/audit-logs/verify',
      {
        config: { access: { permission: 'audit_logs.read' } },
        schema: {
          tags: ['audit'],
          summary: "Walk the tenant's audit hash chain and report the first row changed, removed or added behind the service's back (reads every row: seconds per million)",
          response: { 200: ChainReportSchema, ...problems(401, 403, 404) },
        },
      },
      async (request) => audit.verify(requireTenant(request)),
    );
  };
}
