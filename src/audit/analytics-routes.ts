import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { requireTenant } from '../http/context.js';
import { DateTime, problems } from '../http/schemas.js';
import { ANALYTICS_LIMITS, ANOMALY_RULES, GROUP_BYS, type AuditAnalyticsService } from './analytics.js';

const Range = {
  from: Type.Optional(Type.String({ format: 'date-time', description: `Start of the range, inclusive (default: ${ANALYTICS_LIMITS.defaultRangeDays} days before \`to\`)` })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'End of the range, exclusive (default: now)' })),
  timezone: Type.Optional(Type.String({ maxLength: 64, description: 'IANA time zone the day and hour buckets start in (default UTC)', examples: ['Europe/Paris'] })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: ANALYTICS_LIMITS.maxLimit, description: `Most groups listed (default ${ANALYTICS_LIMITS.defaultLimit}); totals still count every row. Not for day and hour` })),
};

const AnalyticsQuery = Type.Object(
  {
    group_by: Type.Union(
      GROUP_BYS.map((g) => Type.Literal(g)),
      { description: '`actor`: the acting user id, or the actor type (`system`, `anonymous`) when no user acted' },
    ),
    ...Range,
    action: Type.Optional(Type.String({ maxLength: 100, examples: ['auth.login_failed'] })),
    actor_user_id: Type.Optional(Type.String({ format: 'uuid' })),
    entity_type: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

const Bucket = Type.Object({
  key: Type.Union([Type.String(), Type.Null()], { description: 'The group; for day and hour the bucket start (ISO timestamp); null: rows without an entity type' }),
  count: Type.Integer(),
});

const AnalyticsResult = Type.Object({
  group_by: Type.String(),
  from: DateTime,
  to: DateTime,
  total: Type.Integer({ description: 'Rows in the range that match the filters, listed or not' }),
  buckets: Type.Array(Bucket),
});

const SecurityQuery = Type.Object({ from: Range.from, to: Range.to, timezone: Range.timezone, limit: Range.limit }, { additionalProperties: false });

const spike = ANOMALY_RULES.failedLoginSpike;
const SecurityView = Type.Object({
  from: DateTime,
  to: DateTime,
  timezone: Type.String(),
  failed_logins: Type.Object({ total: Type.Integer(), buckets: Type.Array(Bucket, { description: 'Failed logins per hour, every hour of the range' }) }),
  lockouts: Type.Object({ total: Type.Integer(), by_user: Type.Array(Type.Object({ user_id: Type.String(), count: Type.Integer() })) }),
  permission_denials: Type.Object({ total: Type.Integer(), by_actor: Type.Array(Type.Object({ actor: Type.String(), count: Type.Integer() })) }),
  anomalies: Type.Array(
    Type.Object({
      rule: Type.Union([Type.Literal('failed_login_spike'), Type.Literal('denial_spike')]),
      hour: Type.String({ description: 'Start of the hour (ISO timestamp)' }),
      count: Type.Integer(),
      baseline: Type.Optional(Type.Number({ description: 'failed_login_spike: failed logins per hour over the 7 days before (at least 1)' })),
      actor: Type.Optional(Type.String({ description: 'denial_spike: the refused actor' })),
    }),
  ),
});

const SECURITY_SUMMARY =
  `Security view: failed logins per hour, lockouts by user, permission denials by actor, and anomalies: ` +
  `failed_login_spike, an hour with at least ${spike.minCount} failed logins and at least ${spike.factor} times the average per hour of the 7 days before (taken as at least ${spike.minBaseline}); ` +
  `denial_spike, one actor refused at least ${ANOMALY_RULES.denialSpike.minCount} times in one hour`;

/** `audit-logs/analytics`: counts of the audit trail (docs/AUDIT.md). */
export function auditAnalyticsRoutes(analytics: AuditAnalyticsService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/audit-logs/analytics',
      {
        config: { access: { permission: 'audit_logs.read' } },
        schema: {
          tags: ['audit'],
          summary: 'Audit counts over a time range (default the last 30 days) by action, actor, entity type, day or hour: groups largest first, days and hours in time order with empty ones',
          querystring: AnalyticsQuery,
          response: { 200: AnalyticsResult, ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => analytics.analytics(requireTenant(request), request.query),
    );

    app.get(
      '/audit-logs/analytics/security',
      { config: { access: { permission: 'audit_logs.read' } }, schema: { tags: ['audit'], operationId: 'getSecurityAnalytics', summary: SECURITY_SUMMARY, querystring: SecurityQuery, response: { 200: SecurityView, ...problems(400, 401, 403, 404) } } },
      async (request) => analytics.security(requireTenant(request), request.query),
    );
  };
}
