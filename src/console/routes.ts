import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../errors.js';

/**
 * Console pages load only the service's own scripts and styles and talk only to its API: no
 * inline script or style, no frames, no other origin.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

function asset(body: Buffer, name: string): Asset {
  return { body, type: TYPES[path.extname(name)] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** The console's files, read once: ours from ./static, Preact + htm (one ES module) from npm. */
function loadAssets(): Map<string, Asset> {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) assets.set(name, asset(readFileSync(path.join(dir, name)), name));
  assets.set('preact.js', asset(readFileSync(fileURLToPath(import.meta.resolve('htm/preact/standalone'))), 'preact.js'));
  return assets;
}

function send(request: FastifyRequest, reply: FastifyReply, file: Asset): FastifyReply {
  reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('cache-control', 'no-cache').header('etag', file.etag);
  if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
  return reply.type(file.type).send(file.body);
}

/**
 * `/console`: the web console, a single page that calls the public API (docs/CONSOLE.md).
 * Every path under it but `assets/` answers the page, which routes on the URL.
 */
export function consoleRoutes(): FastifyPluginAsync {
  return async (app) => {
    const assets = loadAssets();
    const page = assets.get('index.html')!;
    const hide = { schema: { hide: true } };
    app.get('/console', hide, (request, reply) => send(request, reply, page));
    app.get<{ Params: { name: string } }>('/console/assets/:name', hide, (request, reply) => {
      const file = request.params.name === 'index.html' ? undefined : assets.get(request.params.name);
      if (!file) throw DomainError.notFound('route');
      return send(request, reply, file);
    });
    app.get('/console/*', hide, (request, reply) => send(request, reply, page));
  };
}
