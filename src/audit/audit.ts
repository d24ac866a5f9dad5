import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ChainedValues } from '../db/audit-chain.js';
import type { TenantDatabase } from '../db/types.js';
import { eventOf, insertAudited } from '../events/outbox.js';

/** Who did something, and from where: written with every mutation and security event. */
export interface AuditActor {
  readonly actorUserId: string | null;
  readonly actorType: 'user' | 'api_key' | 'system' | 'anonymous';
  readonly sessionId: string | null;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly requestId: string | null;
  /** An API key's scope when one acts: it bounds what the actor holds (not recorded). */
  readonly scope?: readonly string[] | null;
}

/** `actor` acting as the user `userId` (a sign-in's steps, taken before any session names them). */
export const asUser = (actor: AuditActor, userId: string): AuditActor => ({ ...actor, actorUserId: userId, actorType: 'user' });

/** The service itself (provisioning, the platform API, schedules): no user, no request. */
export const SYSTEM_ACTOR: AuditActor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null };

export interface AuditEntry {
  readonly action: string;
  readonly entityType?: string;
  readonly entityId?: string | null;
  readonly before?: unknown;
  readonly after?: unknown;
  readonly metadata?: Record<string, unknown>;
}

const SECRET_KEYS = /^(password|password_hash|new_password|current_password|token|token_hash|refresh_token|refresh_token_hash|previous_refresh_token_hash|key_hash|secret|secrets|encrypted_secrets)$/;

/** Copies a value with secrets and hashes replaced by "[redacted]". */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEYS.test(k) ? '[redacted]' : redact(v)]));
  }
  return value;
}

function json(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(redact(value));
}

/** An audit row as written: every column its chain hash covers. */
export interface AuditRow extends ChainedValues {
  readonly id: string;
  readonly created_at: Date;
}

/** The audit row for an entry, for callers that insert it inside a larger statement. */
export function auditRow(actor: AuditActor, entry: AuditEntry): AuditRow {
  return {
    id: randomUUID(),
    created_at: new Date(),
    actor_user_id: actor.actorUserId,
    actor_type: actor.actorType,
    session_id: actor.sessionId,
    ip_address: actor.ip,
    user_agent: actor.userAgent?.slice(0, 1000) ?? null,
    request_id: actor.requestId,
    action: entry.action,
    entity_type: entry.entityType ?? null,
    entity_id: entry.entityId ?? null,
    before: json(entry.before),
    after: json(entry.after),
    metadata: JSON.stringify(redact(entry.metadata ?? {})),
  };
}

/**
 * Writes one audit row and the event it makes (events/catalogue.ts) in one statement; call it
 * with the transaction of the change it records.
 */
export async function writeAudit(db: Kysely<TenantDatabase>, actor: AuditActor, entry: AuditEntry): Promise<void> {
  await insertAudited(db, auditRow(actor, entry), eventOf(actor.actorUserId, entry, redact));
}
