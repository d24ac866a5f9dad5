import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, text as msg } from '../errors.js';

/** How the HTTP server meets the network: proxies it believes and how long it waits (SPEC §10, Edge). */
export interface EdgeOptions {
  /** Whose X-Forwarded-For is believed: nobody (false), every hop (true), a hop count, or addresses/CIDRs. */
  readonly trustProxy: boolean | number | readonly string[];
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_EDGE: EdgeOptions = { trustProxy: false, requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5000 };

/** The Fastify server options that carry the edge settings. */
export function serverOptions(edge: EdgeOptions) {
  const trust = edge.trustProxy;
  return {
    // A hop count trusts the nearest `n` addresses whoever they are (Fastify's own number form
    // trusts none): only for a service that proxies alone can reach.
    trustProxy: typeof trust === 'number' ? (_address: string, hop: number) => hop < trust : typeof trust === 'boolean' ? trust : [...trust],
    requestTimeout: edge.requestTimeoutMs,
    keepAliveTimeout: edge.keepAliveTimeoutMs,
    // Node checks header and request deadlines every connectionsCheckingInterval (30 s by
    // default): checked more often, a trickling client is closed close to its deadline.
    http: {
      headersTimeout: edge.headersTimeoutMs,
      requestTimeout: edge.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(edge.headersTimeoutMs / 2))),
    },
  };
}

/**
 * The headers every answer carries, set once per request in the first onRequest hook (so
 * errors and 404s carry them too). API answers are `no-store`: they hold tokens, secrets or a
 * tenant's data, and none is meant for a shared cache; a route that sets its own
 * Cache-Control (attachment downloads revalidate by ETag) overrides it.
 */
export function securityHeaders(publicUrl: string): { all: Record<string, string>; api: Record<string, string> } {
  const all: Record<string, string> = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
  if (publicUrl.startsWith('https:')) all['strict-transport-security'] = 'max-age=31536000';
  return { all, api: { ...all, 'cache-control': 'no-store' } };
}

/**
 * True when a browser says a form post comes from another site. `Sec-Fetch-Site` decides when
 * sent (only `same-origin`, or `none` for the user's own navigation, pass); else an `Origin`
 * must be this service's (`PUBLIC_URL`'s, or the one the request was addressed to). `Origin:
 * null` passes: a page with `Referrer-Policy: no-referrer` makes browsers send it for the
 * page's own posts. A client that sends neither header is no browser acting for someone else.
 */
export function crossSite(request: FastifyRequest, publicUrl: string | undefined): boolean {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = request.headers.origin;
  if (origin === undefined || origin === 'null') return false;
  const own = [`${request.protocol}://${request.host}`];
  if (publicUrl) own.push(new URL(publicUrl).origin);
  return !own.includes(origin);
}

/** JSON bodies nest at most this deep: deeper ones are a 400 before any code walks them. */
export const MAX_JSON_DEPTH = 64;
/** An oversized body is read (and dropped) up to this size so its 413 reaches the client. */
export const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

/** True when the JSON text opens more than `max` arrays/objects inside one another. */
export function nestedDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // Skip a string: its brackets are not structure.
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 92) i++;
        else if (s === 34) break;
      }
    } else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

const tooLarge = (limit: number) => new DomainError('request.too_large', msg('detail.body_too_large', { limit }));

/**
 * The JSON body parser: Fastify's own (prototype poisoning refused) behind a nesting bound,
 * and a body over the limit is read to its end (up to DRAIN_LIMIT_BYTES) before the 413 is
 * sent, so the client is not reset while still sending and reads its answer.
 */
export function registerJsonParser(app: FastifyInstance, options: { bodyLimit: number; maxDepth?: number; drainLimit?: number }): void {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  const drainLimit = options.drainLimit ?? DRAIN_LIMIT_BYTES;
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', (request: FastifyRequest, payload, done) => {
    const limit = request.routeOptions.bodyLimit ?? options.bodyLimit;
    const declared = Number(request.headers['content-length']);
    if (declared > drainLimit) return done(tooLarge(limit), undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: Error | null, body?: unknown) => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      done(error, body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > drainLimit) finish(tooLarge(limit));
      else chunks.length = 0;
    };
    const onEnd = () => {
      if (size > limit) return finish(tooLarge(limit));
      const text = Buffer.concat(chunks, size).toString('utf8');
      if (nestedDeeperThan(text, maxDepth)) return finish(DomainError.invalid('body', msg('reason.nested_too_deep', { depth: maxDepth })));
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      parse(request, text, done);
    };
    const onError = (error: Error & { statusCode?: number }) => {
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      finish(error);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
  });
}
