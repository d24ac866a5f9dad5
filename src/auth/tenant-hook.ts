import type { FastifyContextConfig, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { AccessService } from '../access/service.js';
import type { AuditActor } from '../audit/audit.js';
import type { Cache } from '../cache/cache.js';
import { MemoryCache } from '../cache/cache.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError, text } from '../errors.js';
import { bearerToken } from '../http/bearer.js';
import { answerLanguage } from '../http/locale.js';
import { actorFrom, type Principal } from '../http/context.js';
import type { PolicyReader } from '../settings/policy.js';
import type { TenantContext, TenantDirectory } from '../tenancy/directory.js';
import type { ApiKeyService } from './api-keys.js';
import type { JwtKeys } from './keys.js';
import type { SessionStore } from './sessions.js';
import { rememberedAccessClaims, verifyAccessToken, type AccessClaims } from './tokens.js';

export interface TenantAuthDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly keys: JwtKeys;
  readonly directory: TenantDirectory;
  readonly sessions: SessionStore;
  readonly access: AccessService;
  readonly apiKeys: ApiKeyService;
  readonly policies: PolicyReader;
  readonly cache: Cache;
  /** Requests per minute per client IP on authentication routes. */
  readonly authRateLimitPerMinute: number;
}

/**
 * onRequest hook of every tenant route: resolves the tenant of the path, applies the per-IP
 * limit to authentication routes, authenticates the caller (Bearer token or X-API-Key), and
 * checks the route's permission against current data (never the token's claim).
 */
export function tenantAuthHook(deps: TenantAuthDeps) {
  const callers = callerCheck(deps);
  const gate = permissionGate(deps);
  const rateLimit = authRateLimit(deps);

  async function check(request: FastifyRequest, reply: FastifyReply, { access, authRateLimited }: FastifyContextConfig): Promise<void> {
    const tenant = await deps.directory.resolve(slugOf(request));
    request.tenant = tenant;
    if (authRateLimited) await rateLimit(request, reply);
    if (access === 'public') return answerLanguage(request, reply);
    const { principal } = await callers.authenticate(request.headers, tenant);
    request.principal = principal;
    answerLanguage(request, reply);
    // Every tenant route declares its rule (a test enforces it); a missing one fails closed.
    if (access === undefined) throw new DomainError('permission.route_undeclared');
    if (access === 'self') return;
    await gate(tenant, principal, actorFrom(request), access.permission, { method: request.method, route: request.routeOptions.url ?? '' });
  }

  /**
   * check() from cached state alone, without a promise (five awaited lookups made ~15 per
   * request): true when a user's Bearer token, the tenant, its policies, the session, the user
   * and the permission were all cached and all say yes, with request.tenant and
   * request.principal set. Anything else (a miss, an API key, a refusal) is left to check(),
   * which loads what is missing and gives the error.
   */
  function allowedFromCache(request: FastifyRequest, reply: FastifyReply, { access, authRateLimited }: FastifyContextConfig): boolean {
    if (access === undefined || access === 'public' || authRateLimited || request.headers['x-api-key'] !== undefined) return false;
    const tenant = deps.directory.cached(slugOf(request));
    const token = tenant && bearerToken(request.headers.authorization);
    const claims = token && rememberedAccessClaims(deps.keys, token, tenant.slug);
    const policy = claims && deps.policies.cached(tenant);
    if (!policy || deps.sessions.isLiveCached(tenant, claims.sid, claims.sub, policy) !== true) return false;
    if (access !== 'self' && deps.access.canCached(tenant, claims.sub, access.permission)?.allowed !== true) return false;
    request.tenant = tenant;
    request.principal = userPrincipal(claims);
    answerLanguage(request, reply);
    return true;
  }

  // Not an async function: Fastify takes a hook either way, calling done() or awaiting what it
  // returns (and refuses an async one that also declares done).
  return (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): Promise<void> | undefined => {
    // Fastify builds request.routeOptions afresh on each read: read once.
    const { config } = request.routeOptions;
    if (!allowedFromCache(request, reply, config)) return check(request, reply, config);
    done();
    return undefined;
  };
}

/**
 * The per-IP limit of authentication routes (the API's public `auth/*` and the account pages'
 * posts count against one budget): 429 with Retry-After past `authRateLimitPerMinute` a minute.
 */
export function authRateLimit(deps: Pick<TenantAuthDeps, 'cache' | 'authRateLimitPerMinute'>) {
  // When the shared cache cannot count (Redis down), count here: never fail open.
  const fallbackCounter = new MemoryCache(10_000);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = `ratelimit:auth:${request.ip}`;
    let counted: { count: number; ttlSeconds: number };
    try {
      counted = await deps.cache.increment(key, 60);
    } catch {
      counted = await fallbackCounter.increment(key, 60);
    }
    if (counted.count > deps.authRateLimitPerMinute) {
      reply.header('retry-after', String(counted.ttlSeconds));
      throw new DomainError('request.rate_limited', text('detail.rate_limited', { seconds: counted.ttlSeconds }));
    }
  };
}

/** Says where a permission was asked for, in the audit row of a refusal. */
export interface GateWhere {
  readonly method: string;
  readonly route: string;
}

/**
 * The one permission rule of every path (REST routes, GraphQL fields): the caller holds the
 * permission now, or the refusal is audited (`auth.permission_denied`) and answered 403.
 */
export function permissionGate(deps: Pick<TenantAuthDeps, 'access'>) {
  return async (tenant: TenantContext, principal: Principal, actor: AuditActor, permission: string, where: GateWhere): Promise<void> => {
    if (await deps.access.holds(tenant, principal, permission)) return;
    await deps.access.refused(tenant, actor, permission, where);
    throw new DomainError('permission.denied', text('detail.permission_missing', { permission }));
  };
}

export type PermissionGate = ReturnType<typeof permissionGate>;

/** Authenticates a tenant's caller, and says later whether it still stands: one rule for each request and each open socket. */
export interface CallerCheck {
  /** The caller of a request's headers (an X-API-Key, or a Bearer access token of a live session), or 401. */
  authenticate(headers: FastifyRequest['headers'], tenant: TenantContext): Promise<{ principal: Principal; apiKey: string | null }>;
  /** Whether a caller authenticated earlier still would be: its key valid and owner active, or its session live. */
  stillStands(tenant: TenantContext, principal: Principal, apiKey: string | null): Promise<boolean>;
}

export function callerCheck(deps: Pick<TenantAuthDeps, 'keys' | 'sessions' | 'apiKeys' | 'policies'>): CallerCheck {
  const keyHolder = async (tenant: TenantContext, apiKey: string) => {
    const key = await deps.apiKeys.authenticate(tenant, apiKey);
    if (!(await deps.sessions.userActive(tenant, key.userId)).active) throw new DomainError('auth.invalid_api_key');
    return key;
  };
  const sessionLive = async (tenant: TenantContext, sessionId: string, userId: string) => deps.sessions.isLive(tenant, sessionId, userId, await deps.policies.policy(tenant));
  return {
    async authenticate(headers, tenant) {
      const apiKey = headers['x-api-key'];
      if (typeof apiKey === 'string' && apiKey.length > 0) {
        const key = await keyHolder(tenant, apiKey);
        return { principal: { kind: 'api_key', userId: key.userId, sessionId: null, apiKeyId: key.id, scope: key.scope }, apiKey };
      }
      const token = bearerToken(headers.authorization);
      if (!token) throw new DomainError('auth.credentials_required', text('detail.bearer_or_key_required'));
      const claims = await verifyAccessToken(deps.keys, token, tenant.slug);
      if (!(await sessionLive(tenant, claims.sid, claims.sub))) throw new DomainError('auth.session_ended');
      return { principal: userPrincipal(claims), apiKey: null };
    },
    async stillStands(tenant, principal, apiKey) {
      if (principal.sessionId) return sessionLive(tenant, principal.sessionId, principal.userId);
      if (apiKey === null) return false;
      try {
        return (await keyHolder(tenant, apiKey)).id === principal.apiKeyId;
      } catch (error) {
        if (error instanceof DomainError) return false;
        throw error;
      }
    },
  };
}

const userPrincipal = (claims: AccessClaims): Principal => ({ kind: 'user', userId: claims.sub, sessionId: claims.sid, apiKeyId: null, scope: null });

const slugOf = (request: FastifyRequest) => (request.params as { tenant_slug?: string }).tenant_slug ?? '';
