import type { FastifyCorsOptions } from '@fastify/cors';

/** The request headers a browser front end may send: those the API reads. */
export const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'If-Match', 'If-None-Match', 'X-Request-Id', 'Accept-Language'] as const;
/** The answer headers its scripts may read. */
export const CORS_EXPOSED_HEADERS = ['ETag', 'Location', 'X-Request-Id', 'Retry-After', 'Content-Language', 'Content-Disposition', 'WWW-Authenticate', 'X-Schema-Version'] as const;

/**
 * `@fastify/cors` for CORS_ORIGINS (exact origins). The origin is a function rather than the
 * list: a refused origin then gets no CORS header at all (with a list it would still get the
 * exposed headers, and its preflight an answer). Tokens travel in Authorization, never in
 * cookies: no credentials mode.
 */
export function corsOptions(origins: readonly string[]): FastifyCorsOptions {
  const allowed = new Set(origins);
  return {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    credentials: false,
    maxAge: 600,
  };
}
