import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { expectedVersion, setEtag } from '../../http/etag.js';
import { created } from '../../http/idempotency.js';
import { DateTime, PaginationQuery, pageOf, problems } from '../../http/schemas.js';
import { actorFrom, requireTenant } from '../../http/context.js';
import { DELIVERY_STATUSES, type WebhookService } from './service.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const WebhookSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    url: Type.String({ examples: ['https://hooks.example.com/system-service'] }),
    events: Type.Array(Type.String(), { examples: [['user.*', 'role.updated']] }),
    description: Nullable(Type.String()),
    enabled: Type.Boolean(),
    failing_since: Nullable(DateTime),
    disabled_reason: Nullable(Type.String()),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'Webhook' },
);
const CreatedWebhookSchema = Type.Object({
  ...WebhookSchema.properties,
  secret: Type.String({ description: 'Signs every delivery (Standard Webhooks); returned only here', examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] }),
});
const DeliverySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    webhook_id: Type.String({ format: 'uuid' }),
    event_id: Type.String({ examples: ['evt_0mia3k2x1c4f9a0b7e6d5c4b3a291'] }),
    event_type: Type.String({ examples: ['user.created'] }),
    status: Type.String({ enum: [...DELIVERY_STATUSES], examples: ['succeeded'] }),
    attempts: Type.Integer(),
    last_status_code: Nullable(Type.Integer()),
    last_error: Nullable(Type.String()),
    next_attempt_at: Nullable(DateTime),
    delivered_at: Nullable(DateTime),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'WebhookDelivery' },
);
const Url = Type.String({ minLength: 8, maxLength: 2000, description: 'http or https; private, loopback and link-local targets only with WEBHOOK_ALLOW_PRIVATE_NETWORKS' });
const Events = Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 100, description: 'Event types, `<resource>.*` or `*` (docs/EVENTS.md)' });
const Description = Type.Optional(Nullable(Type.String({ maxLength: 2000 })));
const IdParams = Type.Object({ webhook_id: Type.String({ format: 'uuid' }) });
const DeliveryParams = Type.Object({ webhook_id: Type.String({ format: 'uuid' }), delivery_id: Type.String({ format: 'uuid' }) });

function view<T extends { version: number }>({ version: _v, ...hook }: T) {
  return hook;
}

/** `webhooks/...`: endpoints, secret rotation, the delivery log and redelivery (SPEC §11). */
export function webhookRoutes(webhooks: WebhookService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/webhooks',
      { config: { access: { permission: 'webhooks.read' } }, schema: { tags: ['webhooks'], summary: 'List webhook endpoints', querystring: PaginationQuery, response: { 200: pageOf(WebhookSchema), ...problems(400, 401, 403, 404) } } },
      async (request) => {
        const page = await webhooks.list(requireTenant(request), request.query);
        return { ...page, items: page.items.map(view) };
      },
    );

    app.post(
      '/webhooks',
      {
        config: { access: { permission: 'webhooks.create' } },
        schema: {
          tags: ['webhooks'],
          summary: 'Add an endpoint; the answer holds its signing secret, shown only here (so no Idempotency-Key: a replay would keep the secret stored).',
          body: Type.Object({ url: Url, events: Events, description: Description, enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          response: { 201: CreatedWebhookSchema, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        return created(request, reply, await webhooks.create(requireTenant(request), request.body, actorFrom(request)));
      },
    );

    app.get(
      '/webhooks/:webhook_id',
      { config: { access: { permission: 'webhooks.read' } }, schema: { tags: ['webhooks'], summary: 'Get a webhook endpoint', params: IdParams, response: { 200: WebhookSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const hook = await webhooks.get(requireTenant(request), request.params.webhook_id);
        setEtag(reply, hook.version);
        return view(hook);
      },
    );

    app.patch(
      '/webhooks/:webhook_id',
      {
        config: { access: { permission: 'webhooks.update' } },
        schema: {
          tags: ['webhooks'],
          summary: 'Change an endpoint (enabling it again clears its failures); honours If-Match',
          params: IdParams,
          body: Type.Object({ url: Type.Optional(Url), events: Type.Optional(Events), description: Description, enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          response: { 200: WebhookSchema, ...problems(400, 401, 403, 404, 412) },
        },
      },
      async (request, reply) => {
        const hook = await webhooks.update(requireTenant(request), request.params.webhook_id, request.body, expectedVersion(request), actorFrom(request));
        setEtag(reply, hook.version);
        return view(hook);
      },
    );

    app.delete(
      '/webhooks/:webhook_id',
      { config: { access: { permission: 'webhooks.delete' } }, schema: { tags: ['webhooks'], summary: 'Delete an endpoint and its delivery log; honours If-Match', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 412) } } },
      async (request, reply) => {
        await webhooks.remove(requireTenant(request), request.params.webhook_id, expectedVersion(request), actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/webhooks/:webhook_id/rotate-secret',
      {
        config: { access: { permission: 'webhooks.update' } },
        schema: { tags: ['webhooks'], summary: 'A new signing secret; the old one still signs beside it for 24 hours', params: IdParams, response: { 200: Type.Object({ secret: Type.String() }), ...problems(400, 401, 403, 404) } },
      },
      async (request) => webhooks.rotateSecret(requireTenant(request), request.params.webhook_id, actorFrom(request)),
    );

    app.get(
      '/webhooks/:webhook_id/deliveries',
      {
        config: { access: { permission: 'webhooks.read' } },
        schema: {
          tags: ['webhooks'],
          summary: "An endpoint's deliveries, newest event first",
          params: IdParams,
          querystring: Type.Object({ ...PaginationQuery.properties, status: Type.Optional(Type.Union(DELIVERY_STATUSES.map((s) => Type.Literal(s)))) }),
          response: { 200: pageOf(DeliverySchema), ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => webhooks.deliveries(requireTenant(request), request.params.webhook_id, request.query),
    );

    app.post(
      '/webhooks/:webhook_id/deliveries/:delivery_id/retry',
      {
        config: { access: { permission: 'webhooks.update' } },
        schema: { tags: ['webhooks'], summary: 'Send a delivery again now', params: DeliveryParams, response: { 202: DeliverySchema, ...problems(400, 401, 403, 404) } },
      },
      async (request, reply) => reply.status(202).send(await webhooks.retry(requireTenant(request), request.params.webhook_id, request.params.delivery_id, actorFrom(request))),
    );
  };
}
