import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ASTNode, ASTVisitor, FieldNode, FragmentDefinitionNode, GraphQLError as GraphQLErrorType, GraphQLNamedType, SelectionSetNode, ValidationContext } from 'graphql';
import { graphql } from './graphql.js';
import mercurius, { type IResolvers, type MercuriusContext } from 'mercurius';
import { DomainError, text as message } from '../errors.js';
import { CLOSE } from '../events/realtime/hub.js';
import type { WebSocket } from 'ws';
import { describeError } from './errors.js';
import { cachedLocale, requestLocale } from '../http/locale.js';
import { render, text, type Locale, type Text } from '../i18n/index.js';
import type { TenantServices as Services } from '../services.js';
import type { TenantContext } from '../tenancy/directory.js';
import { permissionGate } from '../auth/tenant-hook.js';
import type { Principal } from '../auth/principal.js';
import { askGate, resolvers, toGraph, type Connection, type GraphContext } from './resolvers.js';
import { typeDefs } from './schema.js';

/** The limits of one operation (docs/GRAPHQL.md): nesting depth, and cost (fields, lists multiplied by their page size). */
export const GRAPHQL_LIMITS = { depth: 8, cost: 5_000 } as const;

const { getNamedType, getNullableType, GraphQLError, isListType, isObjectType, Kind, NoSchemaIntrospectionCustomRule } = graphql;

interface Context extends GraphContext {
  readonly locale: Locale;
}

/**
 * `POST|GET /api/v1/tenants/{tenant_slug}/graphql` (§12) inside the tenant routes: the tenant is
 * resolved and the caller authenticated by the same functions as REST, before any resolver runs.
 */
export async function registerGraphql(app: FastifyInstance, services: Services, options: { production: boolean }): Promise<void> {
  const gate = permissionGate(services);
  const validationRules = [costRule(GRAPHQL_LIMITS.cost), ...(options.production ? [NoSchemaIntrospectionCustomRule] : [])];
  await app.register(mercurius, {
    schema: typeDefs,
    resolvers: resolvers(services, gate) as unknown as IResolvers,
    path: '/graphql',
    graphiql: !options.production,
    queryDepth: GRAPHQL_LIMITS.depth,
    // A query seen once more is compiled to JavaScript (graphql-jit): the hot reads skip the generic executor.
    jit: 1,
    validationRules,
    loaders: {
      User: {
        // A page of users' teams in one statement, once the caller may read teams.
        teams: async (queries: { obj: { id: string } }[], ctx: MercuriusContext) => {
          const context = ctx as unknown as Context;
          await askGate(gate, context, 'teams.read', 'User.teams');
          const byUser = await services.teams.ofUsers(context.tenant, queries.map((q) => q.obj.id));
          return queries.map((q) => (byUser.get(q.obj.id) ?? []).map((team) => toGraph(team)));
        },
      },
    },
    context: async (request: FastifyRequest, reply: FastifyReply): Promise<Omit<Context, 'app' | 'reply'>> => {
      // Also built for a refusal before any resolver ran (an unknown or suspended tenant): then without a tenant.
      const tenant = request.tenant;
      let principal: Principal | undefined;
      let refusal: unknown = new DomainError('tenant.not_found');
      if (tenant) {
        try {
          principal = (await services.callers.authenticate(request.headers, tenant)).principal;
          request.principal = principal;
        } catch (error) {
          refusal = error;
        }
      }
      // The caller's state was just loaded by the authentication: its locale is known without waiting.
      const locale = cachedLocale(request);
      request.locale = locale;
      reply.header('content-language', locale);
      return {
        request,
        tenant: tenant as TenantContext,
        locale,
        gates: new Map(),
        principal: () => {
          if (!principal) throw refusal;
          return principal;
        },
      };
    },
    errorFormatter: (execution, ctx) => formatErrors(execution as never, ctx as unknown as Partial<Context>),
    subscription: {
      // The caller is authenticated when it subscribes (resolvers.ts), from connection_init's
      // headers or the upgrade's; a socket that has not done so within a while is closed.
      onConnect: () => true,
      context: async (socket: WebSocket, request: FastifyRequest) => ({
        request,
        tenant: request.tenant!,
        locale: await requestLocale(request),
        gates: new Map(),
        connection: connectionOf(socket),
        principal: () => {
          throw new DomainError('auth.credentials_required');
        },
      }),
    },
  });
  // A query is GraphQL text: mercurius would otherwise take a JSON syntax tree, unchecked by the rules below.
  app.graphql.addHook('preParsing', async (_schema, source, context) => {
    if (/^\s*\{\s*"/.test(source)) throw new DomainError('request.invalid', message('graphql.not_a_document'));
    // Over GET, the operation to run must be found before mercurius asks whether it is a query.
    const request = (context as MercuriusContext).reply?.request;
    if (request?.method === 'GET') {
      const name = (request.query as { operationName?: unknown }).operationName;
      if (!graphql.getOperationAST(graphql.parse(source), typeof name === 'string' ? name : undefined)) throw new DomainError('request.invalid', message('graphql.operation_unknown'));
    }
  });
  // Subscriptions are validated like queries (mercurius checks only their depth): every rule, the cost included.
  const rules = [...graphql.specifiedRules, ...validationRules];
  app.graphql.addHook('preSubscriptionExecution', async (schema, document) => {
    const errors = graphql.validate(schema, document, rules);
    if (errors.length) throw errors[0];
  });
}

/** How long a GraphQL socket may stay open without an authenticated subscription. */
const UNAUTHENTICATED_MS = 10_000;

function connectionOf(socket: WebSocket): Connection {
  let authenticated = false;
  const timer = setTimeout(() => authenticated || socket.close(CLOSE.sessionEnded, 'unauthenticated'), UNAUTHENTICATED_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  const connection: Connection = {
    open: 0,
    track(stream) {
      authenticated = true;
      connection.open++;
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        connection.open--;
        void stream.return?.();
      };
      socket.once('close', end);
      return {
        next: async () => {
          const result = await stream.next();
          if (result.done) end();
          return result;
        },
        return: async () => {
          end();
          return { value: undefined, done: true };
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    },
    refuse() {
      if (!authenticated) setTimeout(() => socket.close(CLOSE.sessionEnded, 'unauthenticated'), 50).unref();
    },
    close(code, reason) {
      socket.close(code, reason);
    },
  };
  return connection;
}

interface Execution {
  readonly data?: unknown;
  readonly errors: readonly GraphQLErrorType[];
}

/**
 * Every error as §12 says: `extensions.code`, the REST problem's code and detail in the reader's
 * language, the fields' reasons; a validation error of the operation is BAD_USER_INPUT; nothing
 * unexpected says more than "internal error" (the request id finds it in the logs).
 */
function formatErrors(execution: Execution, ctx: Partial<Context>) {
  const locale = ctx.locale ?? 'en';
  const requestId = ctx.request?.id;
  // A refused operation (parse, validation, depth) arrives as one error holding the list of reasons.
  const flat = execution.errors.flatMap((e) => {
    const cause = e.originalError ?? e;
    // Only mercurius's own refusals (MER_ERR_*) carry a list of reasons worth showing.
    const inner = String((cause as { code?: unknown }).code ?? '').startsWith('MER_ERR_') ? (cause as { errors?: unknown }).errors : undefined;
    return Array.isArray(inner) ? inner.map((v: Error) => ({ error: v, validation: true })) : [{ error: e as Error, validation: false }];
  });
  let status = 200;
  const errors = flat.map(({ error: raw, validation }) => {
    const error = raw as GraphQLErrorType;
    const original = error.originalError ?? (error instanceof GraphQLError ? undefined : raw);
    const base = { message: error.message, ...(error.locations ? { locations: error.locations } : {}), ...(error.path ? { path: error.path } : {}) };
    if (validation || !original || original instanceof GraphQLError) {
      const { [MESSAGE]: key, ...extensions } = (error.extensions ?? {}) as Record<string, unknown>;
      if (!execution.data) status = 400;
      return { ...base, ...(key ? { message: render(locale, key as Text) } : {}), extensions: { ...extensions, code: 'BAD_USER_INPUT' } };
    }
    const described = describeError(original, locale, requestId);
    if (described.extensions.code === 'INTERNAL_SERVER_ERROR') ctx.request?.log.error({ err: original }, 'graphql resolver failed');
    if (!execution.data && flat.length === 1) status = described.status;
    return { ...base, message: described.message, extensions: described.extensions };
  });
  return { statusCode: status, response: { data: (execution.data ?? null) as never, errors: errors as never } };
}

/**
 * The cost of an operation: 1 per field; a field with a `pageSize` argument multiplies its
 * selection by it (20 when left out, 100 when it is a variable), another list by 20 (a page's
 * `items` are counted by the page). Past `limit` the operation is refused before it runs.
 */
function costRule(limit: number) {
  return (context: ValidationContext): ASTVisitor => {
    const schema = context.getSchema();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of context.getDocument().definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    const costOf = (set: SelectionSetNode | undefined, parent: GraphQLNamedType | undefined | null, seen: Set<string>): number => {
      let total = 0;
      for (const s of set?.selections ?? []) {
        if (s.kind === Kind.FIELD) total += fieldCost(s, parent, seen);
        else if (s.kind === Kind.INLINE_FRAGMENT) total += costOf(s.selectionSet, s.typeCondition ? schema.getType(s.typeCondition.name.value) : parent, seen);
        else if (!seen.has(s.name.value)) {
          const fragment = fragments.get(s.name.value);
          total += costOf(fragment?.selectionSet, fragment ? schema.getType(fragment.typeCondition.name.value) : undefined, new Set([...seen, s.name.value]));
        }
      }
      return total;
    };
    const fieldCost = (field: FieldNode, parent: GraphQLNamedType | undefined | null, seen: Set<string>): number => {
      const definition = parent && isObjectType(parent) ? parent.getFields()[field.name.value] : undefined;
      if (!definition) return 1 + costOf(field.selectionSet, undefined, seen);
      const size = field.arguments?.find((a) => a.name.value === 'pageSize')?.value;
      const paged = definition.args.some((a) => a.name === 'pageSize');
      const list = isListType(getNullableType(definition.type));
      const literal = size?.kind === Kind.INT ? Number.parseInt(size.value, 10) : Number.NaN;
      const multiplier = paged ? (size === undefined ? 20 : Number.isFinite(literal) ? Math.min(Math.max(1, literal), 100) : 100) : list && !parent?.name.endsWith('Page') ? 20 : 1;
      const own = 1 + multiplier * costOf(field.selectionSet, getNamedType(definition.type), seen);
      // A root field is a lookup at least, a mutation a write: aliases of either are not free.
      return parent === schema.getMutationType() ? Math.max(own, 100) : parent === schema.getQueryType() ? Math.max(own, 10) : own;
    };
    return {
      OperationDefinition(node) {
        const root = node.operation === 'query' ? schema.getQueryType() : node.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
        const cost = costOf(node.selectionSet, root, new Set());
        // Fails closed: a cost that is not a number is over the limit too.
        if (!(cost <= limit)) context.reportError(translatable(text('graphql.too_costly', { cost, limit }), node));
      },
    };
  };
}

/** A validation error of ours: English in the error, its message key kept to answer in the reader's language. */
function translatable(message: Text, node: ASTNode): GraphQLErrorType {
  return new GraphQLError(render('en', message), { nodes: [node], extensions: { [MESSAGE]: message } });
}
const MESSAGE = 'message_key';
