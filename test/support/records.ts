import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { bearer } from './tenants.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A tenant API call: `call(app, token, 'POST', 'ra/notes', body, headers)`. */
export function caller(app: FastifyInstance) {
  return (token: string, method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method, url: `/api/v1/tenants/${url}`, headers: { ...bearer(token), ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });
}

export interface FilePart {
  readonly name?: string;
  readonly type?: string;
  readonly content: Buffer;
  /** The part's field name (default `file`). */
  readonly field?: string;
}

/** A multipart/form-data body: text fields, then file parts. */
export function multipart(fields: Record<string, string>, files: readonly FilePart[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----test${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  for (const file of files) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field ?? 'file'}"; filename="${file.name ?? 'file.bin'}"\r\nContent-Type: ${file.type ?? 'application/octet-stream'}\r\n\r\n`));
    chunks.push(file.content, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Uploads a file to `<slug>/<path>` (attachments or attachments/{id}/versions). */
export function upload(app: FastifyInstance, token: string, url: string, file: FilePart, fields: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const body = multipart(fields, [file]);
  return app.inject({ method: 'POST', url: `/api/v1/tenants/${url}`, headers: { ...bearer(token), ...body.headers, ...headers }, payload: body.payload });
}
