import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TProperties, type TSchema } from 'typebox';
import { actorFrom, requireTenant } from '../http/context.js';
import { expectedVersion, setEtag } from '../http/etag.js';
import { created, idempotencyOf } from '../http/idempotency.js';
import { listQuery } from '../http/listing.js';
import { DateTime, pageOf, problems } from '../http/schemas.js';
import { nullable, Uuid } from './fields.js';
import { pairOf, TARGET_TYPE, type ListQuery, type RecordService, type RecordSpec, type Row } from './resource.js';

/* The HTTP routes of an extended resource, from its spec: list, create, read, update, delete, restore, and its own extras. */

export interface RecordKit {
  readonly service: RecordService;
  readonly response: TSchema;
  readonly params: TSchema;
  /** The target pair's body properties (empty without a target). */
  readonly targetBody: TProperties;
  /** Answers one row: ETag from its version, body without it. */
  answer(reply: FastifyReply, row: Row): Record<string, unknown>;
  /**
   * Runs a create under Idempotency-Key and answers 201 with Location (under `collection`,
   * default the request path) and ETag. `fingerprint` stands for a body that is not JSON.
   */
  create(request: FastifyRequest, reply: FastifyReply, input: Record<string, unknown>, options?: { fingerprint?: string; collection?: string }): Promise<Record<string, unknown> & { id: string }>;
}

/** The response schema of a resource: id, target pair, own fields, created_by, timestamps. */
function responseSchema(spec: RecordSpec): TSchema {
  const pair = spec.target ? pairOf(spec.target) : undefined;
  return Type.Object(
    {
      id: Uuid,
      ...(pair ? { [pair.type]: nullable(Type.String()), [pair.id]: nullable(Uuid) } : {}),
      ...spec.fields,
      created_by: nullable(Uuid),
      created_at: DateTime,
      updated_at: DateTime,
    },
    { $id: spec.schemaId },
  );
}

/** CRUD routes of one resource, plus its extra routes. */
/** The input schemas of a record type: its list query and its create body (REST and GraphQL check the same). */
export function recordSchemas(spec: RecordService['spec']) {
  const pair = spec.target ? pairOf(spec.target) : undefined;
  const targetBody: TProperties = pair ? { [pair.type]: Type.Optional(nullable(TARGET_TYPE)), [pair.id]: Type.Optional(nullable(Uuid)) } : {};
  const targetFilters: TProperties = pair ? { [pair.type]: Type.Optional(TARGET_TYPE), [pair.id]: Type.Optional(Uuid) } : {};
  const filters: TProperties = { ...targetFilters, ...Object.fromEntries(Object.entries(spec.filters ?? {}).map(([k, f]) => [k, f.schema])) };
  const create = spec.create ? Type.Object({ ...spec.create, ...targetBody }, { additionalProperties: false }) : undefined;
  return { pair, targetBody, list: listQuery(spec.sorts, filters), create };
}

export function recordRoutes(service: RecordService): FastifyPluginAsyncTypebox {
  const { spec } = service;
  const { targetBody, list, create } = recordSchemas(spec);
  const tags = [spec.path];
  const response = responseSchema(spec);
  const params = Type.Object({ id: Uuid });
  const access = (action: string) => ({ access: { permission: `${spec.table}.${action}` } });
  const one = `${/^[aeiou]/.test(spec.label) ? 'an' : 'a'} ${spec.label}`;
  const base = `/${spec.path}`;

  const answer = (reply: FastifyReply, row: Row) => {
    const { version, ...body } = service.view(row);
    setEtag(reply, version);
    return body;
  };
  const kit: RecordKit = {
    service,
    response,
    params,
    targetBody,
    answer,
    async create(request, reply, input, options = {}) {
      const outcome = await service.create(requireTenant(request), input, actorFrom(request), idempotencyOf(request, options.fingerprint));
      return created(request, reply, outcome, options.collection) as Record<string, unknown> & { id: string };
    },
  };

  return async (app) => {
    app.get(
      base,
      {
        config: access('read'),
        schema: { tags, summary: `List ${spec.label}s`, querystring: list, response: { 200: pageOf(response as ReturnType<typeof Type.Object>), ...problems(400, 401, 403, 404) } },
      },
      async (request) => service.list(requireTenant(request), request.query as unknown as ListQuery),
    );

    if (create) {
      app.post(
        base,
        {
          config: access('create'),
          schema: {
            tags,
            summary: `Create ${one}. Honours Idempotency-Key.`,
            body: create,
            response: { 201: response, ...problems(400, 401, 403, 404, 409, 422) },
          },
        },
        async (request, reply) => kit.create(request, reply, request.body as Record<string, unknown>),
      );
    }

    app.get(
      `${base}/:id`,
      { config: access('read'), schema: { tags, summary: `Get ${one}`, params, response: { 200: response, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => answer(reply, await service.get(requireTenant(request), (request.params as { id: string }).id)),
    );

    for (const method of ['PUT', 'PATCH'] as const) {
      app.route({
        method,
        url: `${base}/:id`,
        config: access('update'),
        schema: {
          tags,
          summary: `Update ${one} (partial); honours If-Match`,
          params,
          body: Type.Object({ ...spec.update, ...(spec.retarget === false ? {} : targetBody) }, { additionalProperties: false }),
          response: { 200: response, ...problems(400, 401, 403, 404, 409, 412) },
        },
        handler: async (request, reply) => {
          const row = await service.update(requireTenant(request), (request.params as { id: string }).id, request.body as Record<string, unknown>, expectedVersion(request), actorFrom(request));
          return answer(reply, row);
        },
      });
    }

    app.delete(
      `${base}/:id`,
      { config: access('delete'), schema: { tags, summary: `Delete ${one} (soft; restore brings it back); honours If-Match`, params, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409, 412) } } },
      async (request, reply) => {
        await service.remove(requireTenant(request), (request.params as { id: string }).id, expectedVersion(request), actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      `${base}/:id/restore`,
      { config: access('delete'), schema: { tags, summary: `Restore a deleted ${spec.label}`, params, response: { 200: response, ...problems(400, 401, 403, 404, 409) } } },
      async (request, reply) => answer(reply, await service.restore(requireTenant(request), (request.params as { id: string }).id, actorFrom(request))),
    );

    if (spec.routes) await app.register(spec.routes(kit));
  };
}
