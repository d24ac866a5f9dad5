import type { FastifyRequest } from 'fastify';
import type { ValueNode } from 'graphql';
import { subscriptionError } from './errors.js';
import { graphql } from './graphql.js';
import { Type, type TSchema } from 'typebox';
import { previewOf, type Preview } from '../access/preview.js';
import type { AuditActor } from '../audit/audit.js';
import { AuditQuery } from '../audit/routes.js';
import type { PermissionGate } from '../auth/tenant-hook.js';
import { DomainError, text } from '../errors.js';
import type { EventEnvelope } from '../events/dispatcher.js';
import { EVENT_PATTERN } from '../events/realtime/hub.js';
import { actorFrom, type Principal } from '../http/context.js';
import { checkInput } from '../http/input.js';
import { recordSchemas } from '../records/routes.js';
import type { RecordService } from '../records/resource.js';
import { CreateRole } from '../roles/routes.js';
import { SearchQuery } from '../search/routes.js';
import type { TenantServices as Services } from '../services.js';
import { CreateTeam, TeamListQuery } from '../teams/routes.js';
import type { TenantContext } from '../tenancy/directory.js';
import { CreateUser, UpdateUser, UserListQuery } from '../users/routes.js';
import { SetRolesBody } from '../users/access-routes.js';
import { SettingParams } from '../settings/routes.js';

/** What every resolver of one request gets: the tenant, the caller (or why there is none), and the request. */
export interface GraphContext {
  readonly request: FastifyRequest;
  readonly tenant: TenantContext;
  /** The authenticated caller; throws the authentication's refusal (401) when there is none. */
  readonly principal: () => Principal;
  readonly locale?: string;
  /** The gate's answer per permission within this operation: each asked (and a refusal audited) once. */
  readonly gates: Map<string, Promise<unknown>>;
}

/** The gate, asked once per permission per operation (aliases cannot multiply its checks or its audit rows). */
export function askGate(gate: PermissionGate, ctx: GraphContext, permission: string, field: string): Promise<{ principal: Principal; actor: AuditActor }> {
  const principal = ctx.principal();
  const actor = actorFrom(ctx.request);
  let asked = ctx.gates.get(permission);
  if (!asked) {
    asked = gate(ctx.tenant, principal, actor, permission, { method: 'GRAPHQL', route: field });
    ctx.gates.set(permission, asked);
  }
  return asked.then(() => ({ principal, actor }));
}

type Args = Record<string, unknown>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows of every resource, as their services type them
type Row = { [key: string]: any };

/** camelCase ↔ snake_case: GraphQL's field names over the REST ones. */
export const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const fromInput = (input: Args) => Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined).map(([k, v]) => [snake(k), v]));
/** A REST row as GraphQL's object (its `version` is the REST ETag, not a field). */
export function toGraph(row: object, renames: Record<string, string> = {}): Row {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [renames[k] ?? camel(k), v instanceof Date ? v.toISOString() : v]));
}
const page = (p: { items: readonly object[]; total: number; page: number; page_size: number }, renames?: Record<string, string>) => ({ items: p.items.map((r) => toGraph(r, renames)), total: p.total, page: p.page, pageSize: p.page_size });
/** A list query from GraphQL arguments: the REST route's names, its schema's defaults and limits. */
const listArgs = (schema: TSchema, args: Args) => checkInput<Record<string, unknown> & { page: number; page_size: number }>(schema, fromInput(args));

const { GraphQLScalarType, Kind } = graphql;

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: function literal(node: ValueNode): unknown {
    switch (node.kind) {
      case Kind.STRING:
      case Kind.BOOLEAN:
        return node.value;
      case Kind.INT:
      case Kind.FLOAT:
        return Number(node.value);
      case Kind.NULL:
        return null;
      case Kind.LIST:
        return node.values.map(literal);
      case Kind.OBJECT:
        return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
      default:
        throw new DomainError('request.invalid');
    }
  },
});

const DateTimeScalar = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (v) => (v instanceof Date ? v.toISOString() : v),
  parseValue: (v) => v,
});

/**
 * The resolvers: each asks the permission gate for the permission its REST route declares, checks
 * its arguments with that route's schema, and calls the same service function. Nothing here
 * reads or writes the database.
 */
export function resolvers(services: Services, gate: PermissionGate) {
  const { users, userAccess, roles, teams, settings, audit, search } = services;
  const recordOf = (table: string) => services.records.find((r) => r.spec.table === table) as RecordService;
  const notes = recordOf('notes');
  const tasks = recordOf('tasks');
  const noteSchemas = recordSchemas(notes.spec);
  const taskSchemas = recordSchemas(tasks.spec);
  const targetRenames = (service: RecordService) => {
    const pair = recordSchemas(service.spec).pair;
    return pair ? { [pair.type]: 'targetType', [pair.id]: 'targetId' } : {};
  };

  /** The caller, once it holds `permission` (else 401 or 403, audited as REST's). */
  const allowed = (ctx: GraphContext, permission: string, field: string) => askGate(gate, ctx, permission, field);
  const signedIn = (ctx: GraphContext) => ({ principal: ctx.principal(), actor: actorFrom(ctx.request) });
  const userOf = async (ctx: GraphContext, id: string) => toGraph(await users.get(ctx.tenant, id));
  /** setUserRoles, checked and ready to run for real or as a dry run (the REST route's rules and limits). */
  const settingRoles = async (ctx: GraphContext, { id, roles: names }: Args, field: string) => {
    const { principal, actor } = await allowed(ctx, 'users.update', field);
    const userId = checkInput<{ id: string }>(IdArg, { id }).id;
    const roles = checkInput<{ roles: string[] }>(SetRolesBody, { roles: names }).roles;
    return { userId, change: (preview?: Preview) => userAccess.setRoles(ctx.tenant, principal.userId, userId, roles, actor, preview) };
  };

  return {
    JSON: JSONScalar,
    DateTime: DateTimeScalar,
    Query: {
      me: async (_: unknown, __: Args, ctx: GraphContext) => userOf(ctx, signedIn(ctx).principal.userId),
      user: async (_: unknown, { id }: Args, ctx: GraphContext) => {
        await allowed(ctx, 'users.read', 'user');
        return userOf(ctx, checkInput<{ id: string }>(IdArg, { id }).id).catch(nullWhenNotFound);
      },
      users: async (_: unknown, args: Args, ctx: GraphContext) => {
        await allowed(ctx, 'users.read', 'users');
        return page(JSON.parse(await users.list(ctx.tenant, listArgs(UserListQuery, args) as never)));
      },
      role: async (_: unknown, { id }: Args, ctx: GraphContext) => {
        await allowed(ctx, 'roles.read', 'role');
        return roles.get(ctx.tenant, checkInput<{ id: string }>(IdArg, { id }).id).then((r) => toGraph(r), nullWhenNotFound);
      },
      roles: async (_: unknown, __: Args, ctx: GraphContext) => {
        await allowed(ctx, 'roles.read', 'roles');
        return (await allPages((p) => roles.list(ctx.tenant, { page: p, page_size: 100 }))).map((r) => toGraph(r));
      },
      team: async (_: unknown, { id }: Args, ctx: GraphContext) => {
        await allowed(ctx, 'teams.read', 'team');
        return teams.get(ctx.tenant, checkInput<{ id: string }>(IdArg, { id }).id).then((t) => toGraph(t), nullWhenNotFound);
      },
      teams: async (_: unknown, args: Args, ctx: GraphContext) => {
        await allowed(ctx, 'teams.read', 'teams');
        return page(await teams.list(ctx.tenant, listArgs(TeamListQuery, args)));
      },
      settings: async (_: unknown, __: Args, ctx: GraphContext) => {
        await allowed(ctx, 'settings.read', 'settings');
        return (await allPages((p) => settings.list(ctx.tenant, { page: p, page_size: 100 }))).map((s) => toGraph(s));
      },
      auditLogs: async (_: unknown, args: Args, ctx: GraphContext) => {
        await allowed(ctx, 'audit_logs.read', 'auditLogs');
        return page(await audit.list(ctx.tenant, checkInput(AuditQuery, fromInput(args))));
      },
      notes: async (_: unknown, { targetType, targetId, ...args }: Args, ctx: GraphContext) => {
        await allowed(ctx, 'notes.read', 'notes');
        const query = listArgs(noteSchemas.list, { ...args, notableType: targetType, notableId: targetId });
        return page(await notes.list(ctx.tenant, query as never), targetRenames(notes));
      },
      tasks: async (_: unknown, args: Args, ctx: GraphContext) => {
        await allowed(ctx, 'tasks.read', 'tasks');
        return page(await tasks.list(ctx.tenant, listArgs(taskSchemas.list, args) as never), targetRenames(tasks));
      },
      search: async (_: unknown, { types, ...args }: Args, ctx: GraphContext) => {
        // Search decides type by type what the caller may read, as its REST route does.
        const { actor } = signedIn(ctx);
        const query = checkInput(SearchQuery, fromInput({ ...args, types: Array.isArray(types) ? types.join(',') : undefined }));
        return page(await search.search(ctx.tenant, actor, query as never));
      },
    },
    Subscription: {
      events: {
        // Authenticated here, with the connection_init payload's headers over the upgrade's (a browser sends its token there).
        subscribe: async (_: unknown, { types }: Args, ctx: SubscriptionContext) => {
          const locale = ctx.locale ?? 'en';
          try {
            if (!ctx.connection) throw new DomainError('realtime.upgrade_required');
            if (ctx.connection.open >= MAX_STREAMS) throw DomainError.invalid('events', text('reason.max_items', { limit: MAX_STREAMS }));
            const filters = checkInput<{ types: string[] }>(EventTypes, { types: types ?? [] }).types;
            // The tenant as it is now (suspended since the upgrade: refused), and the caller from connection_init's headers over the upgrade's.
            const tenant = await services.directory.resolve(ctx.tenant.slug);
            const { principal, apiKey } = await services.callers.authenticate({ ...ctx.request.headers, ...headersOf(ctx._connectionInit) }, tenant).catch((error: unknown) => {
              ctx.connection?.refuse();
              throw error;
            });
            return ctx.connection.track(services.realtime.stream(tenant, principal, apiKey, locale, filters, (code, reason) => ctx.connection?.close(code, reason)));
          } catch (error) {
            throw subscriptionError(error, locale);
          }
        },
        // Over plain HTTP a subscription has no event to resolve: it needs the WebSocket.
        resolve: (event: EventEnvelope | undefined) => {
          if (!event?.id) throw new DomainError('realtime.upgrade_required');
          return { id: event.id, type: event.type, tenantSlug: event.tenant_slug, occurredAt: event.occurred_at, actorUserId: event.actor_user_id, data: event.data };
        },
      },
    },
    Mutation: {
      createUser: async (_: unknown, { input }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'users.create', 'createUser');
        return toGraph((await users.create(ctx.tenant, checkInput(CreateUser, fromInput(input as Args)), actor)).body);
      },
      updateUser: async (_: unknown, { id, input }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'users.update', 'updateUser');
        return toGraph(await users.update(ctx.tenant, checkInput<{ id: string }>(IdArg, { id }).id, checkInput(UpdateUser, fromInput(input as Args)), undefined, actor));
      },
      deleteUser: async (_: unknown, { id }: Args, ctx: GraphContext) => {
        const { principal, actor } = await allowed(ctx, 'users.delete', 'deleteUser');
        await users.remove(ctx.tenant, principal.userId, checkInput<{ id: string }>(IdArg, { id }).id, undefined, actor);
        return true;
      },
      setUserRoles: async (_: unknown, args: Args, ctx: GraphContext) => {
        const { userId, change } = await settingRoles(ctx, args, 'setUserRoles');
        await change();
        return userOf(ctx, userId);
      },
      previewUserRoles: async (_: unknown, args: Args, ctx: GraphContext) => {
        const preview = await previewOf((await settingRoles(ctx, args, 'previewUserRoles')).change);
        return { ...toGraph(preview), affected: preview.affected.map((u) => toGraph(u)) };
      },
      createRole: async (_: unknown, { input }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'roles.create', 'createRole');
        return toGraph((await roles.create(ctx.tenant, checkInput(CreateRole, fromInput(input as Args)), actor)).body);
      },
      createTeam: async (_: unknown, { input }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'teams.create', 'createTeam');
        return toGraph((await teams.create(ctx.tenant, checkInput(CreateTeam, fromInput(input as Args)), actor)).body);
      },
      createNote: async (_: unknown, { input }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'notes.create', 'createNote');
        const { targetType, targetId, ...rest } = input as Args;
        const body = checkInput<Row>(noteSchemas.create!, fromInput({ ...rest, notableType: targetType, notableId: targetId }));
        return toGraph((await notes.create(ctx.tenant, body, actor)).body, targetRenames(notes));
      },
      updateSetting: async (_: unknown, { key, value }: Args, ctx: GraphContext) => {
        const { actor } = await allowed(ctx, 'settings.update', 'updateSetting');
        return toGraph(await settings.update(ctx.tenant, checkInput<{ setting_id: string }>(SettingParams, { setting_id: key }).setting_id, value, undefined, actor));
      },
    },
  };
}

/** `user(id)`, `role(id)`, `team(id)`: null for an id that names nothing (GraphQL's way), other refusals as errors. */
function nullWhenNotFound(error: unknown): null {
  if (error instanceof DomainError && error.kind === 'not_found') return null;
  throw error;
}

/** Every page of a list (roles and settings are answered whole). */
async function allPages<T>(read: (page: number) => Promise<{ items: T[]; total: number }>): Promise<T[]> {
  const all: T[] = [];
  for (let p = 1; ; p++) {
    const { items, total } = await read(p);
    all.push(...items);
    if (items.length === 0 || all.length >= total) return all;
  }
}

const IdArg = Type.Object({ id: Type.String({ format: 'uuid' }) });
/** Streams one GraphQL socket may hold at once. */
const MAX_STREAMS = 20;

/** One GraphQL socket's state (graphql/plugin.ts): its open streams, and how it is closed. */
export interface Connection {
  open: number;
  /** Counts a stream while it lives, and ends it when the socket closes. */
  track<T>(stream: AsyncIterableIterator<T>): AsyncIterableIterator<T>;
  /** A subscription whose caller did not authenticate: the socket closes after the error is sent. */
  refuse(): void;
  close(code: number, reason: string): void;
}

type SubscriptionContext = GraphContext & { _connectionInit?: Record<string, unknown>; connection?: Connection };
const EventTypes = Type.Object({ types: Type.Array(Type.String({ pattern: EVENT_PATTERN.source }), { maxItems: 100 }) });

/** The credentials a graphql-transport-ws client puts in its connection_init payload, as request headers. */
function headersOf(payload: Record<string, unknown> | undefined): Record<string, string> {
  const source = (payload?.headers as Record<string, unknown> | undefined) ?? payload ?? {};
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) if (typeof value === 'string' && /^(authorization|x-api-key)$/i.test(name)) out[name.toLowerCase()] = value;
  return out;
}
