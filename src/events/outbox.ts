import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { withAuditRow, type ChainedValues } from '../db/audit-chain.js';
import type { TenantDatabase } from '../db/types.js';
import { eventTypeOf } from './catalogue.js';

/** An event as the outbox stores it (the envelope without the tenant, added when it goes out). */
export interface OutboxRow {
  readonly id: string;
  readonly type: string;
  readonly actor_user_id: string | null;
  readonly data: string;
}

interface Audited {
  readonly action: string;
  readonly entityId?: string | null;
  readonly before?: unknown;
  readonly after?: unknown;
  readonly metadata?: Record<string, unknown>;
}

/** A new event id: `evt_`, then time (sortable) and randomness. */
export function newEventId(): string {
  return `evt_${Date.now().toString(36).padStart(9, '0')}${randomBytes(10).toString('hex')}`;
}

/**
 * The event an audited change writes, or null. `data` is the resource as the API answers it
 * (its state after the change, or before a deletion; `redacted` has removed secrets), with its
 * id; a change to a user's roles or permissions also carries what they were (`previous`).
 */
export function eventOf(actorUserId: string | null, entry: Audited, redacted: (value: unknown) => unknown): OutboxRow | null {
  const type = eventTypeOf(entry.action);
  if (!type) return null;
  const state = (entry.after ?? entry.before ?? entry.metadata ?? {}) as Record<string, unknown>;
  const { version: _version, ...resource } = typeof state === 'object' && state !== null && !Array.isArray(state) ? state : { value: state };
  const data: Record<string, unknown> = { ...(entry.entityId ? { id: entry.entityId } : {}), ...resource };
  if (type.endsWith('_changed') && entry.before) data.previous = entry.before;
  if (entry.after && entry.metadata && Object.keys(entry.metadata).length) data.details = entry.metadata;
  return { id: newEventId(), type, actor_user_id: actorUserId, data: JSON.stringify(redacted(data)) };
}

/**
 * Inserts the audit row and its event in one statement, with a signal in `shared.event_signals`
 * telling every instance's dispatcher the tenant has work (its schema found from the outbox
 * row's table: the tenant handle knows its schema, the statement does not). Without an event,
 * the audit row alone.
 */
/** Events this process has written (rolled back or not): a commit after a change of it wakes the dispatcher. */
export const written = { events: 0 };

export async function insertAudited(db: Kysely<TenantDatabase>, audit: ChainedValues, event: OutboxRow | null): Promise<void> {
  const chained = withAuditRow(db, audit);
  if (!event) {
    await chained.selectNoFrom(sql<number>`1`.as('written')).execute();
    return;
  }
  written.events++;
  await withEvent(chained, event).execute();
}

/** A signal row for the schema of the outbox table the `event` CTE wrote to. */
const signalled = sql<string>`(SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "event"."t")`;

/** Appends to a statement with CTEs the event's insert and the signal's (the statement's last part). */
export function withEvent(q: object, event: OutboxRow) {
  return (q as unknown as Kysely<WithSignals>)
    .with('event', (w) => w.insertInto('outbox_events').values(event).returning(sql<string>`tableoid`.as('t')))
    .insertInto('shared.event_signals')
    .columns(['schema_name'])
    .expression((eb) => eb.selectFrom('event').select(signalled.as('schema_name')));
}

/** `shared.event_signals`, named with its schema so that a tenant handle does not qualify it. */
type WithSignals = TenantDatabase & { 'shared.event_signals': { schema_name: string } };
