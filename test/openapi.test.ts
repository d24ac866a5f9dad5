import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { operationOf, withEnums } from '../src/app.js';
import { openapiDocument } from '../scripts/openapi.js';

/** The OpenAPI document as a client generator reads it: names, headers, enums, examples. */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is read field by field
type Json = any;
interface Operation {
  operationId?: string;
  summary?: string;
  parameters?: { in: string; name: string; required?: boolean; schema?: Json; example?: unknown }[];
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, { description: string; content?: Record<string, Media>; headers?: Record<string, { schema: Json }> }>;
}
interface Media {
  schema?: Json;
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}

const addFormats = ((addFormatsPlugin as unknown as { default?: typeof addFormatsPlugin }).default ?? addFormatsPlugin) as unknown as (ajv: Ajv) => Ajv;

let doc: Json;
let operations: { where: string; method: string; path: string; op: Operation }[];

beforeAll(async () => {
  doc = await openapiDocument();
  operations = Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ where: `${method.toUpperCase()} ${path}`, method, path, op })),
  );
});

describe('operation names', () => {
  it('every operation has an operationId, camelCase and unique', () => {
    expect(operations.length).toBeGreaterThan(100);
    const ids = operations.map(({ where, op }) => {
      expect(op.operationId, where).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      return op.operationId;
    });
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('derives a name from the method and the route: verb, then the nouns of the path', () => {
    const name = (method: string, url: string) => operationOf(method, url).id;
    expect(name('GET', '/api/v1/tenants/:tenant_slug/users')).toBe('listUsers');
    expect(name('POST', '/api/v1/tenants/:tenant_slug/users')).toBe('createUser');
    expect(name('GET', '/api/v1/tenants/:tenant_slug/users/:user_id')).toBe('getUser');
    expect(name('PUT', '/api/v1/tenants/:tenant_slug/users/:user_id')).toBe('replaceUser');
    expect(name('PATCH', '/api/v1/tenants/:tenant_slug/carbon-footprints/:id')).toBe('updateCarbonFootprint');
    expect(name('DELETE', '/api/v1/tenants/:tenant_slug/users/:user_id/sessions')).toBe('deleteUserSessions');
    expect(name('POST', '/api/v1/tenants/:tenant_slug/notes/:id/restore')).toBe('restoreNote');
    expect(name('POST', '/api/v1/tenants/:tenant_slug/webhooks/:webhook_id/rotate-secret')).toBe('rotateWebhookSecret');
    expect(name('GET', '/api/v1/tenants/:tenant_slug/reviews/aggregate')).toBe('aggregateReviews');
    expect(name('GET', '/api/v1/tenants/:tenant_slug/me/api-keys')).toBe('listMyApiKeys');
    expect(name('POST', '/api/v1/tenants/:tenant_slug/auth/password-reset/request')).toBe('requestPasswordReset');
    expect(name('POST', '/api/v1/tenants/:tenant_id/backups/:backup_id/restore')).toBe('restoreTenantBackup');
    expect(name('GET', '/.well-known/jwks.json')).toBe('getJwks');
    // A route's own operationId wins over the derived one.
    const own = operations.find((o) => o.path === '/api/v1/tenants/{tenant_slug}/me' && o.method === 'put');
    expect(own?.op.operationId).toBe('updateMe');
  });

  it('every success answer has a description of its own', () => {
    for (const { where, op } of operations) {
      const successes = Object.entries(op.responses).filter(([status]) => /^(1|2)\d\d$/.test(status));
      expect(successes.length, where).toBeGreaterThan(0);
      for (const [status, response] of successes) {
        expect(response.description, `${where} ${status}`).toMatch(/\w/);
        expect(response.description, `${where} ${status}`).not.toBe('Default Response');
      }
    }
    const answer = (path: string, method: string, status: string) => (doc.paths[path][method] as Operation).responses[status]!.description;
    expect(answer('/api/v1/tenants/{tenant_slug}/users', 'post', '201')).toBe('The new user');
    expect(answer('/api/v1/tenants/{tenant_slug}/users', 'get', '200')).toBe('A page of users, with the total');
    expect(answer('/api/v1/tenants/{tenant_slug}/users/{user_id}', 'delete', '204')).toBe('The user deleted; no body');
  });
});

describe('headers the operations read', () => {
  const headers = (op: Operation) => (op.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name);

  it('X-Request-Id and Accept-Language on every operation; X-Request-Id and Content-Language on every answer', () => {
    for (const { where, op } of operations) {
      expect(headers(op), where).toEqual(expect.arrayContaining(['x-request-id', 'accept-language']));
      for (const [status, response] of Object.entries(op.responses)) expect(Object.keys(response.headers ?? {}), `${where} ${status}`).toEqual(expect.arrayContaining(['x-request-id', 'content-language']));
    }
  });

  it('If-Match where a stale version answers 412, Idempotency-Key where a create honours it, If-None-Match where 304 answers', () => {
    const having = (name: string) => operations.filter(({ op }) => headers(op).includes(name)).map(({ where }) => where);
    for (const { where, op } of operations) {
      // Summaries say which routes honour the headers: the parameters must agree.
      const summary = op.summary ?? '';
      expect(headers(op).includes('if-match'), where).toBe(/honours If-Match/i.test(summary));
      expect(headers(op).includes('idempotency-key'), where).toBe(/honours Idempotency-Key/i.test(summary));
      expect(headers(op).includes('if-match'), where).toBe('412' in op.responses);
      for (const name of ['if-match', 'idempotency-key', 'if-none-match']) expect(op.parameters?.find((p) => p.name === name)?.required ?? false, where).toBe(false);
    }
    expect(having('idempotency-key')).toEqual(expect.arrayContaining(['POST /api/v1/tenants/{tenant_slug}/users', 'POST /api/v1/tenants/{tenant_slug}/notes', 'POST /api/v1/tenants/{tenant_slug}/attachments/{id}/versions']));
    expect(having('idempotency-key')).not.toContain('POST /api/v1/tenants/{tenant_slug}/webhooks');
    expect(having('if-match')).toEqual(expect.arrayContaining(['PATCH /api/v1/tenants/{tenant_slug}/users/{user_id}', 'DELETE /api/v1/tenants/{tenant_slug}/roles/{role_id}', 'PUT /api/v1/tenants/{tenant_slug}/settings/{setting_id}']));
    expect(having('if-none-match')).toEqual(['GET /api/v1/tenants/{tenant_slug}/attachments/{id}/content']);
  });
});

describe('enums', () => {
  it('turns a union of literals into an enum, a nullable one too', () => {
    const literals = (...values: unknown[]) => values.map((v) => ({ type: typeof v, const: v }));
    expect(withEnums({ anyOf: literals('a', 'b'), default: 'a' })).toEqual({ type: 'string', enum: ['a', 'b'], default: 'a' });
    expect(withEnums({ anyOf: [{ anyOf: literals(1, 2) }, { type: 'null' }] })).toEqual({ type: ['number', 'null'], enum: [1, 2, null] });
    expect(withEnums({ anyOf: [{ type: 'string' }, { type: 'null' }] })).toEqual({ anyOf: [{ type: 'string' }, { type: 'null' }] });
    expect(withEnums({ properties: { s: { anyOf: literals('x') } } })).toEqual({ properties: { s: { type: 'string', enum: ['x'] } } });
  });

  it('the document has no anyOf of single values', () => {
    const found: string[] = [];
    const walk = (node: Json, at: string) => {
      if (!node || typeof node !== 'object') return;
      const single = (s: Json) => s && (s.const !== undefined || (Array.isArray(s.enum) && s.enum.length === 1));
      if (Array.isArray(node.anyOf) && node.anyOf.some(single)) found.push(at);
      for (const [key, value] of Object.entries(node)) walk(value, `${at}/${key}`);
    };
    walk(doc, '#');
    expect(found).toEqual([]);
    const status = operations.find((o) => o.where === 'GET /api/v1/tenants/{tenant_slug}/users')!.op.parameters!.find((p) => p.name === 'status')!;
    expect(status.schema).toEqual({ type: 'string', enum: ['active', 'invited', 'suspended', 'inactive'] });
  });
});

describe('examples', () => {
  it('every example in the document passes its own schema', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addFormat('binary', true);
    ajv.addSchema({ components: doc.components }, 'openapi');
    const compiled = new Map<string, ValidateFunction>();
    const check = (schema: Json, example: unknown, where: string) => {
      const text = JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/');
      let validate = compiled.get(text);
      if (!validate) compiled.set(text, (validate = ajv.compile(JSON.parse(text))));
      if (!validate(structuredClone(example))) failures.push(`${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(example)}`);
      checked++;
    };
    // A schema's own example and those of the schemas inside it.
    const inSchema = (schema: Json, where: string) => {
      if (!schema || typeof schema !== 'object') return;
      if (schema.example !== undefined) check(schema, schema.example, where);
      for (const [name, property] of Object.entries(schema.properties ?? {})) inSchema(property, `${where}.${name}`);
      if (schema.items) inSchema(schema.items, `${where}[]`);
      for (const key of ['anyOf', 'oneOf', 'allOf'] as const) (schema[key] ?? []).forEach((s: Json, i: number) => inSchema(s, `${where}/${key}/${i}`));
      if (typeof schema.additionalProperties === 'object') inSchema(schema.additionalProperties, `${where}{}`);
    };
    const inMedia = (media: Media, where: string) => {
      if (!media.schema) return;
      if (media.example !== undefined) check(media.schema, media.example, where);
      for (const [name, example] of Object.entries(media.examples ?? {})) check(media.schema, example.value, `${where} (${name})`);
      inSchema(media.schema, where);
    };
    let checked = 0;
    const failures: string[] = [];
    for (const { where, op } of operations) {
      for (const p of op.parameters ?? []) {
        if (p.example !== undefined) check(p.schema, p.example, `${where} ${p.in} ${p.name}`);
        inSchema(p.schema, `${where} ${p.in} ${p.name}`);
      }
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) inMedia(media, `${where} body ${type}`);
      for (const [status, response] of Object.entries(op.responses)) for (const [type, media] of Object.entries(response.content ?? {})) inMedia(media, `${where} ${status} ${type}`);
    }
    for (const [name, schema] of Object.entries(doc.components.schemas ?? {})) inSchema(schema, `#/components/schemas/${name}`);
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(150);
  });
});
