import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { CallerCheck } from '../../auth/tenant-hook.js';
import { DomainError, text } from '../../errors.js';
import { requirePrincipal, requireTenant } from '../../http/context.js';
import { requestLocale } from '../../http/locale.js';
import type { Locale } from '../../i18n/index.js';
import { problems } from '../../http/schemas.js';
import type { RealtimeHub } from './hub.js';
import { TICKET_TTL_SECONDS, type RealtimeTickets } from './tickets.js';

const STREAM_DESCRIPTION = `Upgrades to a WebSocket (send \`Connection: Upgrade\`, \`Upgrade: websocket\`; the answer is 101 Switching Protocols); a plain GET answers 426.

Authentication, checked before the upgrade (401 problem otherwise): \`Authorization: Bearer <access token>\`, \`X-API-Key\`, or \`?ticket=\` from \`POST realtime/tickets\` (single use, ${TICKET_TTL_SECONDS} s: browsers cannot set headers on a WebSocket).

The server sends \`{"type": "ready", "tenant_slug", "events": ["*"]}\`, then each event of the tenant (the envelope of docs/EVENTS.md, one JSON text message) that the caller may read now: the \`read\` permission of the event's resource (\`user.*\` needs \`users.read\`, \`session.*\` \`sessions.read\`, \`auth.*\` \`audit_logs.read\`), decided per message from current roles and overrides.

Client messages: \`{"type": "subscribe", "events": ["user.*", "role.updated"]}\` replaces the filter (answered \`{"type": "subscribed", "events"}\`), \`{"type": "ping"}\` is answered \`{"type": "pong"}\`; anything else gets \`{"type": "error", "code": "request.invalid", "detail"}\`.

The server pings every 30 s and drops a socket that did not answer the previous ping; it cuts a client that stops reading (1 MiB unsent), and closes with 4401 when the session is revoked or ends, or the key is revoked, at once. Close 1001: the instance is shutting down; reconnect.`;

/** `realtime`: the event stream over a WebSocket, and tickets to open one from a browser (SPEC §11). */
export function realtimeRoutes(hub: RealtimeHub, tickets: RealtimeTickets, callers: CallerCheck): FastifyPluginAsyncTypebox {
  /** The socket's caller, found before the upgrade so that a refusal is a plain 401 problem. */
  const opened = new WeakMap<FastifyRequest, { apiKey: string | null; locale: Locale }>();

  return async (app) => {
    app.post(
      '/realtime/tickets',
      {
        config: { access: 'self' },
        schema: {
          tags: ['realtime'],
          summary: `A single-use ticket (${TICKET_TTL_SECONDS} s) that opens the realtime socket as this session: \`GET realtime?ticket=...\``,
          response: { 201: Type.Object({ ticket: Type.String({ examples: ['rtt_q8Zx0m3N2v6B1c4D7f9G5h8J0k2L4n6P8r0T2v4X6z8'] }), expires_in: Type.Integer({ examples: [TICKET_TTL_SECONDS] }) }), ...problems(401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await tickets.issue(requireTenant(request), requirePrincipal(request))),
    );

    app.route({
      method: 'GET',
      url: '/realtime',
      config: { access: 'public' },
      schema: {
        tags: ['realtime'],
        operationId: 'connectRealtime',
        summary: 'The tenant\'s events as they happen, over a WebSocket',
        description: STREAM_DESCRIPTION,
        querystring: Type.Object({ ticket: Type.Optional(Type.String({ maxLength: 200, description: 'From POST realtime/tickets, when no header can be sent' })) }),
        response: problems(401, 403, 404, 426),
        // Public to the route table (the caller is authenticated here, before the upgrade, to take a ticket too).
        security: [{ bearer: [] }, { apiKey: [] }, { ticket: [] }],
      },
      preValidation: async (request) => {
        const tenant = requireTenant(request);
        if (request.headers.upgrade?.toLowerCase() !== 'websocket') throw new DomainError('realtime.upgrade_required');
        const { ticket } = request.query as { ticket?: string };
        if (ticket !== undefined && !request.headers.authorization && !request.headers['x-api-key']) {
          request.principal = await tickets.redeem(tenant, ticket);
          if (!(await callers.stillStands(tenant, request.principal, null))) throw new DomainError('auth.invalid_ticket', text('detail.ticket_session_ended'));
          opened.set(request, { apiKey: null, locale: await requestLocale(request) });
          return;
        }
        const caller = await callers.authenticate(request.headers, tenant);
        request.principal = caller.principal;
        opened.set(request, { apiKey: caller.apiKey, locale: await requestLocale(request) });
      },
      handler: async () => {
        throw new DomainError('realtime.upgrade_required');
      },
      wsHandler: (socket, request) => {
        const caller = opened.get(request);
        if (!caller || !request.tenant || !request.principal) {
          socket.close(1011, 'not authenticated');
          return;
        }
        void hub.add(socket, request.tenant, request.principal, caller.apiKey, caller.locale).catch(() => socket.terminate());
      },
    });
  };
}
