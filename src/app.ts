import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify';
import { derivedKey, type JwtKeys } from './auth/keys.js';
import { healthRoutes, type ReadinessCheck } from './health/routes.js';
import { schemaController, validatorCompiler } from './http/compilers.js';
import { DEFAULT_EDGE, registerJsonParser, securityHeaders, serverOptions, type EdgeOptions } from './http/edge.js';
import { addExamples } from './http/examples.js';
import { requestLogger } from './http/request-log.js';
import { nulError } from './http/text.js';
import { answerLanguage, registerContentLanguage } from './http/locale.js';
import { DEFAULT_LOCALE, LOCALES } from './i18n/index.js';
import { registerProblemHandlers } from './http/problem.js';
import { problems, ProblemSchema } from './http/schemas.js';
import { authRoutes } from './auth/routes.js';
import { tenantAuthHook } from './auth/tenant-hook.js';
import type { RouteAccess } from './http/context.js';
import { meRoutes } from './me/routes.js';
import type { TenantServices } from './services.js';
import { recordRoutes } from './records/routes.js';
import { migrationRoutes, tenantRoutes } from './tenancy/routes.js';
import type { TenantLifecycle } from './tenancy/lifecycle.js';
import type { TenantService } from './tenancy/service.js';
import { auditRoutes } from './audit/routes.js';
import { auditAnalyticsRoutes } from './audit/analytics-routes.js';
import { roleRoutes } from './roles/routes.js';
import { searchRoutes } from './search/routes.js';
import { settingsRoutes } from './settings/routes.js';
import { teamRoutes } from './teams/routes.js';
import { userRoutes } from './users/routes.js';
import { userAccessRoutes } from './users/access-routes.js';
import { webhookRoutes } from './events/webhooks/routes.js';
import { realtimeRoutes } from './events/realtime/routes.js';
import websocket from '@fastify/websocket';
import { registerGraphql } from './graphql/plugin.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every tenant route with its declared access rule (a test checks none lacks one). */
    tenantRouteRules: { method: string; url: string; access: RouteAccess | undefined }[];
  }
}

export interface AppDeps {
  readonly keys: JwtKeys;
  readonly tenants: TenantService;
  /** Export, import, fork, backups, suspension and deletion of whole tenants. */
  readonly lifecycle: TenantLifecycle;
  readonly services: TenantServices;
  readonly readiness: Record<string, ReadinessCheck>;
  /** Production: no GraphiQL, no GraphQL introspection. */
  readonly production?: boolean;
  /** A pino logger, or logger options; tests pass `false`. */
  readonly logger: FastifyBaseLogger | { level: string } | false;
  /** Proxies and timeouts (default: no proxy trusted, 30 s request, 10 s headers, 5 s keep-alive). */
  readonly edge?: EdgeOptions;
  /** PUBLIC_URL: an https one adds Strict-Transport-Security to every answer. */
  readonly publicUrl?: string;
  /** HMAC key of idempotency fingerprints (default: derived from the JWT key material). */
  readonly idempotencyKey?: Buffer;
}

const BODY_LIMIT = 1_048_576;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type JsonSchema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

const ACCEPT_LANGUAGE = {
  type: 'string',
  description: `The languages the caller reads, with quality values (RFC 9110), e.g. \`de-CH, fr;q=0.8\`. Problem details and mails are written in the user's own locale when it is set, else the best match here, else the tenant's \`locale.default\`. Supported: ${LOCALES.join(', ')} (GET /api/v1/locales).`,
};
const CONTENT_LANGUAGE = { type: 'string', description: 'The locale the answer\'s words are in (§15 negotiation).' };

/**
 * How a route reads in the OpenAPI document: a path parameter of the prefix (`tenant_slug`)
 * is declared beside the route's own, and query parameters with a default are optional.
 */
function documentedRoute({ schema: routeSchema, url }: { schema: FastifySchema; url: string }): { schema: FastifySchema; url: string } {
  const schema = routeSchema as Record<string, unknown> | undefined;
  if (!schema) return { schema: routeSchema, url };
  const out: Record<string, unknown> = { ...schema };
  const params = schema.params as JsonSchema | undefined;
  const pathNames = [...url.matchAll(/:([a-z_]+)/g)].map((m) => m[1]!);
  if (params?.properties) {
    const missing = pathNames.filter((n) => !(n in params.properties!));
    if (missing.length) {
      out.params = {
        ...params,
        properties: { ...Object.fromEntries(missing.map((n) => [n, { type: 'string' }])), ...params.properties },
        required: [...missing, ...(params.required ?? [])],
      };
    }
  }
  const query = schema.querystring as JsonSchema | undefined;
  if (query?.properties && query.required) {
    out.querystring = { ...query, required: query.required.filter((n) => (query.properties![n] as { default?: unknown } | undefined)?.default === undefined) };
  }
  // §15: every route takes Accept-Language and answers with Content-Language.
  const headers = (schema.headers as JsonSchema | undefined) ?? { type: 'object', properties: {} };
  out.headers = { ...headers, properties: { 'accept-language': ACCEPT_LANGUAGE, ...headers.properties } };
  if (schema.response) {
    out.response = Object.fromEntries(
      Object.entries(schema.response as Record<string, Record<string, unknown>>).map(([status, response]) => [status, { ...response, headers: { ...(response.headers as object | undefined), 'content-language': CONTENT_LANGUAGE } }]),
    );
  }
  return { schema: out as FastifySchema, url };
}

/** The HTTP application, without listening: main.ts listens, tests use `app.inject`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger && 'child' in deps.logger ? { loggerInstance: deps.logger } : { logger: deps.logger }),
    // Callers may pass their own request id (from a gateway); otherwise one is made.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    childLoggerFactory: requestLogger,
    schemaController: schemaController(),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    ...serverOptions(deps.edge ?? DEFAULT_EDGE),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler());
  app.decorate('idempotencyKey', deps.idempotencyKey ?? derivedKey(deps.keys, 'idempotency fingerprint'));
  const headers = securityHeaders(deps.publicUrl ?? '');
  // Hooks that never wait on anything take Fastify's callback form: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(request.url.startsWith('/api/') ? headers.api : headers.all);
    reply.header('x-request-id', request.id);
    answerLanguage(request, reply);
    done();
  });
  app.addHook('preValidation', (request, _reply, done) => done(nulError(request)));
  // Bodies are JSON (or multipart where a route says so): plain text is a 415, not a string body.
  app.removeContentTypeParser('text/plain');
  registerJsonParser(app, { bodyLimit: BODY_LIMIT });
  app.decorateRequest('systemActor', null);
  app.decorateRequest('tenant', null);
  app.decorateRequest('principal', null);
  app.addSchema(ProblemSchema);
  // Every documented body and success response gets an example (see http/examples.ts).
  app.addHook('onRoute', (route) => {
    if (route.schema) route.schema = addExamples(route.schema as Record<string, unknown>);
  });
  registerProblemHandlers(app);
  const { sessions, policies } = deps.services;
  registerContentLanguage(app, {
    userLocale: (tenant, userId, cachedOnly) => (cachedOnly ? sessions.userCached(tenant, userId)?.locale : sessions.userActive(tenant, userId).then((u) => u.locale)),
    tenantLocale: (tenant, cachedOnly) => (cachedOnly ? policies.cached(tenant)?.defaultLocale : policies.policy(tenant).then((p) => p.defaultLocale)),
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'system-service', description: 'Multi-tenant identity and user management', version: '0.1.0' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          ticket: { type: 'apiKey', in: 'query', name: 'ticket', description: 'A realtime ticket (POST realtime/tickets), for the WebSocket route only' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transform: documentedRoute,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes(deps.readiness));
  app.get(
    '/.well-known/jwks.json',
    { schema: { tags: ['auth'], summary: 'Public keys that verify access tokens (empty for HMAC algorithms)' } },
    async () => ({ keys: deps.keys.publicJwk ? [deps.keys.publicJwk] : [] }),
  );
  app.get(
    '/api/v1/locales',
    {
      schema: {
        tags: ['locales'],
        summary: 'The languages answers and mails can be written in',
        response: { 200: Type.Object({ default: Type.String(), locales: Type.Array(Type.String()) }), ...problems() },
      },
    },
    async () => ({ default: DEFAULT_LOCALE, locales: [...LOCALES] }),
  );
  await app.register(tenantRoutes(deps.tenants, deps.lifecycle, deps.keys), { prefix: '/api/v1/tenants' });
  await app.register(migrationRoutes(deps.tenants, deps.keys), { prefix: '/api/v1/migrations' });

  // Realtime sockets (events/realtime): client messages are small control messages.
  await app.register(websocket, { options: { maxPayload: 16_384 } });
  app.addHook('onClose', () => deps.services.realtime.close());

  const rules: FastifyInstance['tenantRouteRules'] = [];
  app.decorate('tenantRouteRules', rules);
  const { services } = deps;
  await app.register(
    async (tenantApp) => {
      tenantApp.addHook('onRoute', (route) => {
        // GraphQL authenticates in its context and answers refusals as GraphQL errors (graphql/plugin.ts).
        // Its schema is docs/schema.graphql, not the OpenAPI document.
        if (/\/graph(ql|iql)(\/|$)/.test(route.url ?? '')) {
          route.config = { ...route.config, access: 'public' };
          route.schema = { ...route.schema, hide: true };
        }
        const access = route.config?.access;
        for (const method of [route.method].flat()) if (method !== 'HEAD') rules.push({ method, url: route.url, access });
        // Documented as it is enforced: every non-public tenant route takes a token or a key.
        if (access !== 'public' && route.schema) route.schema = { ...route.schema, security: [{ bearer: [] }, { apiKey: [] }] };
      });
      tenantApp.addHook('onRequest', tenantAuthHook(services));
      await tenantApp.register(authRoutes(services.auth));
      await tenantApp.register(meRoutes({ users: services.users, auth: services.auth, apiKeys: services.apiKeys }));
      await tenantApp.register(userAccessRoutes(services.userAccess));
      await tenantApp.register(userRoutes(services.users));
      await tenantApp.register(roleRoutes(services.roles));
      await tenantApp.register(settingsRoutes(services.settings));
      await tenantApp.register(auditRoutes(services.audit));
      await tenantApp.register(auditAnalyticsRoutes(services.auditAnalytics));
      await tenantApp.register(teamRoutes(services.teams));
      for (const records of services.records) await tenantApp.register(recordRoutes(records));
      await tenantApp.register(searchRoutes(services.search));
      await tenantApp.register(webhookRoutes(services.webhooks));
      await tenantApp.register(realtimeRoutes(services.realtime, services.realtimeTickets, services.callers));
      await registerGraphql(tenantApp, services, { production: deps.production ?? false });
    },
    { prefix: '/api/v1/tenants/:tenant_slug' },
  );
  return app;
}
