import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql, type Kysely } from 'kysely';
import { Type } from 'typebox';
import type { PlatformDatabase } from '../db/platform-types.js';
import { text } from '../i18n/index.js';
import { requestLocale } from '../http/locale.js';
import { problemBody } from '../http/problem.js';

export type ReadinessCheck = () => Promise<void>;

/** Readiness probes by name: the database always, Redis when configured (added by its feature). */
export function databaseCheck(db: Kysely<PlatformDatabase>, timeoutMs = 2000): ReadinessCheck {
  return async () => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        sql`SELECT 1`.execute(db),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}

export function healthRoutes(checks: Record<string, ReadinessCheck>): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/health',
      { schema: { tags: ['health'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
      async () => ({ status: 'ok' as const }),
    );

    const Checks = Type.Record(Type.String(), Type.String(), { description: 'Each check: "ok" or the reason it failed' });
    app.get(
      '/ready',
      {
        schema: {
          tags: ['health'],
          summary: 'Dependencies are reachable (503 names the failing check)',
          response: {
            200: Type.Object({ status: Type.Literal('ok'), checks: Checks }),
            503: {
              description: 'A dependency is down',
              content: {
                'application/problem+json': {
                  schema: Type.Object({ type: Type.String(), title: Type.String(), status: Type.Integer(), detail: Type.String(), checks: Checks, request_id: Type.String() }),
                },
              },
            },
          },
        },
      },
      async (request, reply) => {
      const results = await Promise.all(
        Object.entries(checks).map(async ([name, check]) => {
          try {
            await check();
            return [name, 'ok'] as const;
          } catch (error) {
            return [name, error instanceof Error ? error.message : String(error)] as const;
          }
        }),
      );
      const failing = results.filter(([, r]) => r !== 'ok');
      const body = Object.fromEntries(results);
      if (failing.length === 0) return { status: 'ok' as const, checks: body };
      return reply
        .status(503)
        .type('application/problem+json')
        .send({ ...problemBody({ code: 'service.not_ready', detail: text('detail.not_ready', { checks: failing.map(([name, reason]) => `${name}: ${reason}`).join('; ') }) }, request.id, await requestLocale(request)), checks: body });
      },
    );
  };
}
