import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/audit.js';
import type { Principal } from '../auth/principal.js';
import type { SystemActor } from '../auth/system-token.js';
import { DomainError } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';

export type { Principal };

/** What a tenant route requires: a permission, the caller's own account, or nothing. */
export type RouteAccess = { readonly permission: string } | 'self' | 'public';

/** The request context the auth hooks fill in (auth/tenant-hook.ts, auth/system-hook.ts) and routes read. */
declare module 'fastify' {
  interface FastifyRequest {
    tenant: TenantContext | null;
    principal: Principal | null;
    systemActor: SystemActor | null;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
    /** Counted against the per-IP limit of authentication routes. */
    authRateLimited?: boolean;
  }
}

export function actorFrom(request: FastifyRequest): AuditActor {
  const p = request.principal;
  return {
    actorUserId: p?.userId ?? null,
    actorType: p ? p.kind : 'anonymous',
    sessionId: p?.sessionId ?? null,
    ip: request.ip ?? null,
    userAgent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'] : null,
    requestId: request.id,
    scope: p?.scope ?? null,
  };
}

export function requireTenant(request: FastifyRequest): TenantContext {
  if (!request.tenant) throw new Error('tenant route without a resolved tenant');
  return request.tenant;
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new DomainError('auth.credentials_required');
  return request.principal;
}

/** The caller's own user session: self-service that API keys may not do (passwords, keys). */
export function requireSession(request: FastifyRequest): Principal & { sessionId: string } {
  const principal = requirePrincipal(request);
  if (!principal.sessionId) throw new DomainError('auth.session_required');
  return principal as Principal & { sessionId: string };
}

