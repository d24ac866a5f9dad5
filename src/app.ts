import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify';
import { accountPageRoutes } from './account/routes.js';
import { derivedKey, type JwtKeys } from './auth/keys.js';
import { healthRoutes, type ReadinessCheck } from './health/routes.js';
import { schemaController, validatorCompiler } from './http/compilers.js';
import { DEFAULT_EDGE, registerJsonParser, securityHeaders, serverOptions, type EdgeOptions } from './http/edge.js';
import { addExamples } from './http/examples.js';
import { corsOptions } from './http/cors.js';
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
import { oidcClientRoutes } from './oidc/client-routes.js';
import { oidcProviderRoutes } from './oidc/provider-routes.js';
import { realtimeRoutes } from './events/realtime/routes.js';
import websocket from '@fastify/websocket';
import { sessionRoutes } from './auth/session-routes.js';
import { mfaRoutes } from './auth/mfa/routes.js';
import { consoleRoutes } from './console/routes.js';
import { registerGraphql } from './graphql/plugin.js';
import { registerObservability, type ObservabilityOptions } from './observability/routes.js';

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
  /** /metrics and the request log line (METRICS, METRICS_TOKEN, METRICS_TENANT_LABELS). */
  readonly observability?: ObservabilityOptions;
  /** A pino logger, or logger options; tests pass `false`. */
  readonly logger: FastifyBaseLogger | { level: string } | false;
  /** Proxies and timeouts (default: no proxy trusted, 30 s request, 10 s headers, 5 s keep-alive). */
  readonly edge?: EdgeOptions;
  /** PUBLIC_URL: an https one adds Strict-Transport-Security to every answer. */
  readonly publicUrl?: string;
  /** HMAC key of idempotency fingerprints (default: derived from the JWT key material). */
  readonly idempotencyKey?: Buffer;
  /** CORS_ORIGINS: browser front ends on these exact origins may call the API (none: no CORS headers at all). */
  readonly corsOrigins?: readonly string[];
}

const BODY_LIMIT = 1_048_576;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type JsonSchema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

const ACCEPT_LANGUAGE = {
  type: 'string',
  description: `The languages the caller reads, with quality values (RFC 9110), e.g. \`de-CH, fr;q=0.8\`. Problem details and mails are written in the user's own locale when it is set, else the best match here, else the tenant's \`locale.default\`. Supported: ${LOCALES.join(', ')} (GET /api/v1/locales).`,
};
const CONTENT_LANGUAGE = { type: 'string', description: 'The locale the answer\'s words are in (§15 negotiation).' };
const X_REQUEST_ID = { type: 'string', pattern: REQUEST_ID.source, description: 'The request\'s id in logs, traces and problem details: this one when it is well formed, else a new one; answered in X-Request-Id.' };
const X_REQUEST_ID_ANSWER = { type: 'string', description: 'The request\'s id (the one sent, or a new one).' };
// The headers a route reads besides these follow from its documented errors: only If-Match
// answers 412, only a reused Idempotency-Key answers 422, only If-None-Match answers 304.
const CONDITIONAL_HEADERS: readonly (readonly [status: string, name: string, schema: Record<string, unknown>])[] = [
  ['412', 'if-match', { type: 'string', description: 'The ETag of the version the change is based on (from the last read or write); a stale one is 412, none (or `*`) changes whatever is current.' }],
  ['422', 'idempotency-key', { type: 'string', minLength: 1, maxLength: 255, description: 'Makes the create safe to retry: the same caller, key and request get the first answer again for 24 hours; the key with another request is 422.' }],
  ['304', 'if-none-match', { type: 'string', description: 'ETags the caller holds: 304 without a body when one is current.' }],
];

/** `a_b-c.json` as words: `['a', 'b', 'c']`. */
const wordsOf = (segment: string) => segment.replace(/\.json$/, '').split(/[-_.]/).filter(Boolean);
const pascal = (words: readonly string[]) => words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
// Path words that end in `s` without being plurals, and verbs that make a segment an action.
const NOT_PLURAL = new Set(['analytics', 'jwks', 'status', 'access']);
const ACTIONS = new Set(['aggregate', 'confirm', 'export', 'fork', 'import', 'initialize', 'login', 'logout', 'purge', 'refresh', 'request', 'restore', 'retry', 'rotate', 'search', 'unlock', 'verify']);
const isPlural = (word: string) => word.endsWith('s') && !word.endsWith('ss') && !NOT_PLURAL.has(word);
const singular = (word: string) => (!isPlural(word) ? word : word.endsWith('ies') ? `${word.slice(0, -3)}y` : word.slice(0, -1));
const PAST: Record<string, string> = { create: 'created', replace: 'updated', update: 'updated', set: 'set', delete: 'deleted', restore: 'restored', unlock: 'unlocked', initialize: 'initialized', fork: 'forked', import: 'imported', purge: 'purged', retry: 'queued again', rotate: 'rotated', logout: 'logged out', confirm: 'confirmed', verify: 'verified', request: 'requested' };
// Path words as a description says them.
const SAID: Record<string, string> = { my: 'your', me: 'current user', api: 'API', jwks: 'public keys (JWKS)', ready: 'readiness', logacall: 'call log', logacalls: 'call logs' };

interface Operation {
  /** camelCase: the verb, then the nouns of the path, e.g. `listUserSessions`, `restoreNote`. */
  readonly id: string;
  /** What the answer holds, in words, e.g. `the user sessions`. */
  readonly subject: string;
  readonly verb: string;
}

/**
 * An operation's name, from its method and route: the version prefix, the tenant prefix and
 * `auth/` name nothing. A route's own `operationId` wins (where these rules read badly).
 */
export function operationOf(method: string, url: string): Operation {
  const path = url.replace(/^\/api\/v1(?=\/|$)/, '').replace(/^\/tenants\/:tenant_slug(?=\/|$)/, '');
  const segments = path.split('/').filter((s) => s && s !== 'auth' && s !== '.well-known');
  const onItem = segments.at(-1)?.startsWith(':') ?? false;
  // Each noun of the path, and whether a parameter names one of its members.
  const nouns: { words: string[]; item: boolean }[] = [];
  for (const segment of segments) {
    if (segment.startsWith(':')) nouns[nouns.length - 1]!.item = true;
    else nouns.push({ words: wordsOf(segment), item: false });
  }
  let verb: string;
  let object: string[] = [];
  const tail = onItem ? undefined : nouns.at(-1);
  if (tail && ACTIONS.has(tail.words[0]!)) {
    nouns.pop();
    [verb, ...object] = tail.words as [string, ...string[]];
  } else if (tail && isPlural(tail.words.at(-1)!)) {
    verb = { GET: 'list', POST: 'create', PUT: 'set', DELETE: 'delete' }[method] ?? method.toLowerCase();
  } else {
    verb = { GET: 'get', POST: 'create', PUT: onItem ? 'replace' : 'set', PATCH: 'update', DELETE: 'delete' }[method] ?? method.toLowerCase();
  }
  // The last noun stays plural where the operation is on the collection (list, aggregate, ...).
  const keepPlural = !onItem && verb !== 'create';
  const words = nouns.flatMap(({ words: w, item }, i) => {
    const last = i === nouns.length - 1;
    const out = last && keepPlural && !item ? w : [...w.slice(0, -1), singular(w.at(-1)!)];
    return out.map((word) => (word === 'me' && !(last && !item && object.length === 0) ? 'my' : word));
  });
  const said = [...words, ...object].map((w) => SAID[w] ?? w).join(' ');
  const subject = said === '' ? '' : said.startsWith('your') ? said : `the ${said}`;
  return { id: verb + pascal([...words, ...object]), subject, verb };
}

/** A 2xx answer's description where the route gives none, e.g. `The new user`. */
function successDescription(op: Operation, status: string, schema: Record<string, unknown> | undefined): string {
  const { verb, subject } = op;
  const properties = schema?.properties as Record<string, unknown> | undefined;
  const page = properties?.items !== undefined && properties.total !== undefined;
  const past = PAST[verb];
  const text =
    status === '201' ? subject.replace(/^(the|your) /, '$1 new ')
    : status === '202' ? `Accepted: ${subject || 'the request'} ${past ?? 'taken'}, the rest happens in the background`
    : status === '204' ? `${subject ? `${subject} ${past ?? 'done'}` : (past ?? 'done')}; no body`
    : page ? `A page of ${verb === 'search' ? 'matches' : subject.replace(/^the /, '')}, with the total`
    : verb === 'get' || verb === 'list' ? subject
    : verb === 'login' || verb === 'refresh' ? 'The access and refresh tokens'
    : verb === 'verify' ? `The verification of ${subject}`
    : verb === 'aggregate' ? `The aggregates of ${subject}`
    : past ? `${subject}, ${past}`
    : `The result (${verb})`;
  return text[0]!.toUpperCase() + text.slice(1);
}

/**
 * TypeBox writes a union of literals as `anyOf` of `const`s; the document says `enum` (what
 * client generators turn into union types). Returns a copy; other schemas are copied as they are.
 */
export function withEnums(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withEnums);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, withEnums(v)]));
  const members = out.anyOf as Record<string, unknown>[] | undefined;
  if (!Array.isArray(members) || members.length === 0) return out;
  // Nested unions of literals count as their literals: `anyOf: [anyOf [consts], null]`.
  const flat = members.flatMap((m) => (m.enum && Object.keys(m).every((k) => k === 'type' || k === 'enum') ? (m.enum as unknown[]).map((value) => ({ type: m.type, const: value })) : [m]));
  const literal = (m: Record<string, unknown>) => 'const' in m && Object.keys(m).every((k) => k === 'type' || k === 'const');
  const isNull = (m: Record<string, unknown>) => m.type === 'null' && Object.keys(m).length === 1;
  if (!flat.every((m) => literal(m) || isNull(m)) || !flat.some(literal)) return out;
  const types = [...new Set(flat.map((m) => (isNull(m) ? 'null' : (m.type ?? typeof m.const) as string)))];
  const values = flat.map((m) => (isNull(m) ? null : m.const));
  const { anyOf: _anyOf, ...rest } = out;
  return { ...rest, type: types.length === 1 ? types[0] : types, enum: values };
}

/**
 * How a route reads in the OpenAPI document: a path parameter of the prefix (`tenant_slug`)
 * is declared beside the route's own, query parameters with a default are optional, every
 * operation has an `operationId` and its 2xx answers a description, the headers it reads are
 * parameters, and unions of literals are enums.
 */
function documentedRoute({ schema: routeSchema, url, route }: { schema: FastifySchema; url: string; route: { method: string | string[] } }): { schema: FastifySchema; url: string } {
  const out = withEnums(routeSchema ?? {}) as Record<string, unknown>;
  const method = Array.isArray(route.method) ? route.method[0]! : route.method;
  const op = operationOf(method, url);
  out.operationId ??= op.id;
  const params = out.params as JsonSchema | undefined;
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
  const query = out.querystring as JsonSchema | undefined;
  if (query?.properties && query.required) {
    out.querystring = { ...query, required: query.required.filter((n) => (query.properties![n] as { default?: unknown } | undefined)?.default === undefined) };
  }
  const responses = (out.response as Record<string, Record<string, unknown>> | undefined) ?? {};
  // §15: every route takes Accept-Language and answers with Content-Language; X-Request-Id both ways.
  const headers = (out.headers as JsonSchema | undefined) ?? { type: 'object', properties: {} };
  const reads = CONDITIONAL_HEADERS.filter(([status]) => status in responses).map(([, name, header]) => [name, header]);
  out.headers = { ...headers, properties: { 'accept-language': ACCEPT_LANGUAGE, 'x-request-id': X_REQUEST_ID, ...Object.fromEntries(reads), ...headers.properties } };
  // A route without a success schema still names its answer: 101 for a WebSocket (426 to a plain GET), else 200.
  const answers = Object.keys(responses).some((s) => s.startsWith('2') || s === '101') ? responses : { ...responses, ...('426' in responses ? { 101: { description: 'Switching Protocols: the socket is open', type: 'null' } } : { 200: {} }) };
  out.response = Object.fromEntries(
    Object.entries(answers).map(([status, response]) => {
      const described = response.description !== undefined || response['x-response-description'] !== undefined;
      const description = status.startsWith('2') && !described ? { 'x-response-description': successDescription(op, status, response) } : {};
      return [status, { ...response, ...description, headers: { ...(response.headers as object | undefined), 'content-language': CONTENT_LANGUAGE, 'x-request-id': X_REQUEST_ID_ANSWER } }];
    }),
  );
  return { schema: out as FastifySchema, url };
}

/**
 * Names a plugin (`auth` for authRoutes): Fastify names an anonymous plugin
 * by its source text, which would then be every trace span's and error's plugin name.
 */
function named<T extends object>(plugin: T, name: string): T {
  Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: name });
  return plugin;
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
    // One line per request, written when it is answered (observability/plugin.ts).
    logController: new LogController({ disableRequestLogging: true }),
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
  registerObservability(app, { db: deps.services.db, local: deps.services.local, migrationStates: () => deps.tenants.migrationSummary() }, deps.observability);
  // Preflights are answered in this plugin's onRequest hook, before any auth hook: a browser sends them without Authorization.
  if (deps.corsOrigins?.length) await app.register(cors, corsOptions(deps.corsOrigins));
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

  await app.register(named(healthRoutes(deps.readiness), 'health'));
  await app.register(named(consoleRoutes(), 'console'));
  await app.register(named(accountPageRoutes({ ...deps.services, publicUrl: deps.publicUrl }), 'account-pages'));
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
  await app.register(named(tenantRoutes(deps.tenants, deps.lifecycle, deps.keys), 'tenants'), { prefix: '/api/v1/tenants' });
  await app.register(named(migrationRoutes(deps.tenants, deps.keys), 'migrations'), { prefix: '/api/v1/migrations' });

  // Realtime sockets (events/realtime): client messages are small control messages.
  await app.register(websocket, { options: { maxPayload: 16_384 } });
  app.addHook('onClose', () => deps.services.realtime.close());
  // Expired OpenID provider rows are swept while the app runs.
  deps.services.oidcProviders.reportErrors((error, tenant) => app.log.error({ err: error, tenant: tenant.slug }, 'openid provider failed'));
  deps.services.oidcProviders.start();
  app.addHook('onClose', async () => deps.services.oidcProviders.stop());

  const rules: FastifyInstance['tenantRouteRules'] = [];
  app.decorate('tenantRouteRules', rules);
  const { services } = deps;
  await app.register(
    named(async (tenantApp) => {
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
      await tenantApp.register(named(authRoutes(services.auth), 'auth'));
      await tenantApp.register(named(sessionRoutes(services.auth), 'session'));
      await tenantApp.register(named(mfaRoutes(services.auth, services.mfa), 'mfa'));
      await tenantApp.register(named(meRoutes({ users: services.users, auth: services.auth, apiKeys: services.apiKeys }), 'me'));
      await tenantApp.register(named(userAccessRoutes(services.userAccess), 'user-access'));
      await tenantApp.register(named(userRoutes(services.users), 'user'));
      await tenantApp.register(named(roleRoutes(services.roles), 'role'));
      await tenantApp.register(named(settingsRoutes(services.settings), 'settings'));
      await tenantApp.register(named(auditRoutes(services.audit), 'audit'));
      await tenantApp.register(named(auditAnalyticsRoutes(services.auditAnalytics), 'audit-analytics'));
      await tenantApp.register(named(teamRoutes(services.teams), 'team'));
      for (const records of services.records) await tenantApp.register(named(recordRoutes(records), 'record'));
      await tenantApp.register(named(searchRoutes(services.search), 'search'));
      await tenantApp.register(named(webhookRoutes(services.webhooks), 'webhook'));
      await tenantApp.register(named(oidcClientRoutes(services.oidcClients, services.oidcKeys), 'oidc-client'));
      await tenantApp.register(named(oidcProviderRoutes({ ...services, providers: services.oidcProviders }), 'oidc-provider'));
      await tenantApp.register(named(realtimeRoutes(services.realtime, services.realtimeTickets, services.callers), 'realtime'));
      await registerGraphql(tenantApp, services, { production: deps.production ?? false });
    }, 'tenant'),
    { prefix: '/api/v1/tenants/:tenant_slug' },
  );
  return app;
}
