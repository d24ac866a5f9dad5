import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ASTNode, ASTVisitor, FieldNode, FragmentDefinitionNode, GraphQLError as GraphQLErrorType, GraphQLNamedType, SelectionSetNode, ValidationContext } from 'graphql';
import { graphql } from './graphql.js';
import mercurius, { type IResolvers, type MercuriusContext } from 'mercurius';
import { DomainError } from '../errors.js';
import { describeError } from './errors.js';
import { requestLocale } from '../http/locale.js';
import { render, text, type Locale, type Text } from '../i18n/index.js';
import type { TenantServices as Services } from '../services.js';
import type { TenantContext } from '../tenancy/directory.js';
import { permissionGate } from '../auth/tenant-hook.js';
import type { Principal } from '../auth/principal.js';
import { camel, resolvers, type GraphContext } from './resolvers.js';
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
  await app.register(mercurius, {
    schema: typeDefs,
    resolvers: resolvers(services, gate) as unknown as IResolvers,
    path: '/graphql',
    graphiql: !options.production,
    queryDepth: GRAPHQL_LIMITS.depth,
    validationRules: [costRule(GRAPHQL_LIMITS.cost), ...(options.production ? [NoSchemaIntrospectionCustomRule] : [])],
    loaders: {
      User: {
        // A page of users' teams in one statement, once the caller may read teams.
        teams: async (queries: { obj: { id: string } }[], ctx: MercuriusContext) => {
          const context = ctx as unknown as Context;
          await gate(context.tenant, context.principal(), actorOf(context), 'teams.read', { method: 'GRAPHQL', route: 'User.teams' });
          const byUser = await services.teams.ofUsers(context.tenant, queries.map((q) => q.obj.id));
          return queries.map((q) => (byUser.get(q.obj.id) ?? []).map(({ version: _v, ...team }) => Object.fromEntries(Object.entries(team).map(([k, v]) => [camel(k), v instanceof Date ? v.toISOString() : v]))));
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
      const locale = await requestLocale(request);
      reply.header('content-language', locale);
      return {
        request,
        tenant: tenant as TenantContext,
        locale,
        principal: () => {
          if (!principal) throw refusal;
          return principal;
        },
      };
    },
    errorFormatter: (execution, ctx) => formatErrors(execution as never, ctx as unknown as Partial<Context>),
    subscription: {
      // The caller is authenticated when it subscribes (resolvers.ts), from connection_init's headers or the upgrade's.
      onConnect: () => true,
      context: async (_socket: unknown, request: FastifyRequest) => ({
        request,
        tenant: request.tenant!,
        locale: await requestLocale(request),
        principal: () => {
          throw new DomainError('auth.credentials_required');
        },
      }),
    },
  });
}

function actorOf(context: Context) {
  const { request } = context;
  const p = context.principal();
  return { actorUserId: p.userId, actorType: p.kind, sessionId: p.sessionId, ip: request.ip, userAgent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'] : null, requestId: request.id, scope: p.scope };
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
    const inner = cause instanceof DomainError ? undefined : (cause as { errors?: unknown }).errors;
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
      const multiplier = paged ? (size === undefined ? 20 : size.kind === Kind.INT ? Math.max(1, Number(size.value)) : 100) : list && !parent?.name.endsWith('Page') ? 20 : 1;
      return 1 + multiplier * costOf(field.selectionSet, getNamedType(definition.type), seen);
    };
    return {
      OperationDefinition(node) {
        const root = node.operation === 'query' ? schema.getQueryType() : node.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
        const cost = costOf(node.selectionSet, root, new Set());
        if (cost > limit) context.reportError(translatable(text('graphql.too_costly', { cost, limit }), node));
      },
    };
  };
}

/** A validation error of ours: English in the error, its message key kept to answer in the reader's language. */
function translatable(message: Text, node: ASTNode): GraphQLErrorType {
  return new GraphQLError(render('en', message), { nodes: [node], extensions: { [MESSAGE]: message } });
}
const MESSAGE = 'message_key';
