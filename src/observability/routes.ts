import { sql, type Kysely } from 'kysely';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { poolOf } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { LocalCache } from '../cache/local.js';
import { sendProblem } from '../http/problem.js';
import { addMetricsSource, METRICS_CONTENT_TYPE, metricsAuthorized, RequestMetrics, type RequestMetricsOptions } from './metrics.js';

export interface ObservabilityOptions extends Partial<RequestMetricsOptions> {
  /** METRICS_TOKEN: when set, GET /metrics requires it as a Bearer token. */
  readonly token?: string | undefined;
}

export interface ObservabilitySources {
  readonly db: Kysely<PlatformDatabase>;
  readonly local: LocalCache;
  readonly migrationStates: () => Promise<Record<string, number>>;
}

/** The path without its query string: query parameters may carry tickets or tokens. */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * One JSON line per request at `info` and the request histogram, from one onResponse hook;
 * and GET /metrics. Nothing here reads headers or bodies, so no secret reaches a log line.
 */
export function registerObservability(app: FastifyInstance, sources: ObservabilitySources, options: ObservabilityOptions = {}): void {
  const metrics = new RequestMetrics({ enabled: options.enabled ?? true, tenantLabels: options.tenantLabels ?? 0 });
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.observe(route, request.method, status, reply.elapsedTime / 1000, request.tenant?.slug);
    // Fastify's disabled logger has no isLevelEnabled: a throw here would skip later onResponse hooks.
    if ((request.log as FastifyBaseLogger & { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('info') !== false) {
      request.log.info(
        {
          method: request.method,
          route,
          path: pathOf(request.url),
          status,
          duration_ms: Math.round(reply.elapsedTime * 100) / 100,
          tenant: request.tenant?.slug,
          user: request.principal?.userId,
          api_key: request.principal?.apiKeyId ?? undefined,
          system: request.systemActor?.subject,
        },
        'request',
      );
    }
    done();
  });

  const pool = poolOf(sources.db);
  const remove = addMetricsSource({
    pool: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    cacheCounts: () => sources.local.counts,
    outboxLag: async () => {
      const { rows } = await sql<{ lag: number | null }>`SELECT extract(epoch FROM now() - min(due_at))::float8 AS lag FROM shared.event_signals WHERE due_at <= now()`.execute(sources.db);
      return Math.max(0, rows[0]?.lag ?? 0);
    },
    migrationStates: sources.migrationStates,
  });
  app.addHook('onClose', (_app, done) => {
    remove();
    done();
  });

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!metricsAuthorized(options.token, request.headers.authorization)) return sendProblem(request, reply, { code: 'auth.credentials_required' });
    return reply.type(METRICS_CONTENT_TYPE).send(await metrics.exposition());
  });
}
