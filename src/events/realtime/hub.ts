import type { Kysely } from 'kysely';
import { render, text as msg, type Locale, type Text } from '../../i18n/index.js';
import type { WebSocket } from 'ws';
import type { AccessService } from '../../access/service.js';
import type { CallerCheck } from '../../auth/tenant-hook.js';
import type { Cache } from '../../cache/cache.js';
import type { Change, Changes } from '../../cache/changes.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import type { Principal } from '../../auth/principal.js';
import type { TenantContext } from '../../tenancy/directory.js';
import { matchesFilter, resourceOfEvent } from '../catalogue.js';
import type { EventEnvelope } from '../dispatcher.js';
import { OutboxFeed } from './feed.js';

export interface RealtimeOptions {
  /** How events reach this instance's sockets: Redis pub/sub (every instance hears the dispatcher), or each instance reading the outboxes. */
  readonly feed: 'pubsub' | 'outbox';
  /** How often the outbox feed looks for other instances' events. */
  readonly pollMs: number;
  /** A ping goes out this often; a socket that has not answered the previous one is dropped. */
  readonly heartbeatMs: number;
  /** A socket with more than this many bytes not yet taken by its client is dropped (a client that does not read). */
  readonly maxBufferedBytes: number;
}

/** Close codes the service uses (docs/EVENTS.md). */
export const CLOSE = { goingAway: 1001, sessionEnded: 4401 } as const;

const CHANNEL = 'realtime:events';
const OPEN = 1;

/** What the hub needs of a peer: a WebSocket, or a GraphQL subscription's stream (stream()). */
export interface Peer {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
}

/** One open socket: who it is, what it asked for, and its sends in order. */
interface Subscriber {
  /** The language of the socket's error messages, negotiated at the upgrade. */
  readonly locale: Locale;
  readonly socket: Peer;
  readonly tenant: TenantContext;
  readonly principal: Principal;
  /** The API key the socket opened with (its validity is checked again), or null for a session. */
  readonly apiKey: string | null;
  filters: readonly string[];
  answered: boolean;
  queue: Promise<void>;
}

export interface RealtimeDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly access: AccessService;
  readonly callers: CallerCheck;
  readonly cache: Cache;
  readonly changes: Changes;
  readonly options: RealtimeOptions;
  readonly onError?: (error: unknown) => void;
}

/**
 * The realtime streams of this instance: every event goes to each socket of its tenant whose
 * caller may read it now (the `read` permission of its resource, decided from current data
 * like a request) and whose `subscribe` filter selects it. A socket whose session or key no
 * longer stands is closed as soon as this instance hears of a change to sessions, users or
 * keys of its tenant, and at the latest on the next event or heartbeat.
 */
export class RealtimeHub {
  private readonly bySchema = new Map<string, Set<Subscriber>>();
  private readonly feed: OutboxFeed | undefined;
  private subscribed: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly deps: RealtimeDeps) {
    if (deps.options.feed === 'outbox') this.feed = new OutboxFeed(deps.db, deps.options.pollMs, (schema, events) => this.deliver(schema, events), (e) => this.error(e));
    deps.changes.listen(this);
  }

  /** Sockets open on this instance (per tenant schema when given). */
  count(schema?: string): number {
    if (schema) return this.bySchema.get(schema)?.size ?? 0;
    let n = 0;
    for (const set of this.bySchema.values()) n += set.size;
    return n;
  }

  /** Called by the dispatcher for each event it claims: published to every instance when the feed is pub/sub. */
  dispatched(envelope: EventEnvelope, schema: string): void {
    if (this.deps.options.feed !== 'pubsub') return;
    this.deps.cache.publish(CHANNEL, JSON.stringify({ schema, envelope })).catch((e) => this.error(e));
  }

  /** Adds an authenticated socket; resolves once events flow to it. */
  async add(socket: WebSocket, tenant: TenantContext, principal: Principal, apiKey: string | null, locale: Locale): Promise<void> {
    if (this.closed) {
      socket.close(CLOSE.goingAway, 'shutting down');
      return;
    }
    const sub: Subscriber = { socket, tenant, principal, apiKey, locale, filters: ['*'], answered: true, queue: Promise.resolve() };
    socket.on('pong', () => (sub.answered = true));
    socket.on('message', (data, isBinary) => this.received(sub, isBinary ? null : data.toString()));
    socket.on('close', () => this.remove(sub));
    socket.on('error', () => socket.terminate());
    await this.attach(sub);
    this.send(sub, { type: 'ready', tenant_slug: tenant.slug, events: sub.filters });
  }

  /**
   * The same stream as a socket's, as an async iterator of events (GraphQL subscriptions): the
   * caller's permissions and standing decide each event exactly as for a socket; the iterator
   * ends when the caller no longer stands or the hub closes.
   */
  stream(tenant: TenantContext, principal: Principal, apiKey: string | null, locale: Locale, filters: readonly string[], onEnd?: (code: number, reason: string) => void): AsyncIterableIterator<EventEnvelope> {
    const queued: EventEnvelope[] = [];
    let waiting: ((result: IteratorResult<EventEnvelope>) => void) | undefined;
    let ended = false;
    let bytes = 0;
    const finish = () => {
      if (ended) return;
      ended = true;
      this.remove(sub);
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    };
    const peer: Peer = {
      get readyState() {
        return ended ? 3 : OPEN;
      },
      get bufferedAmount() {
        return bytes;
      },
      send: (data) => {
        const message = JSON.parse(data) as EventEnvelope;
        // Events only: the socket protocol's own messages (ready, pong) mean nothing here.
        if (typeof message.type !== 'string' || !message.type.includes('.')) return;
        if (waiting) {
          waiting({ value: message, done: false });
          waiting = undefined;
        } else {
          queued.push(message);
          bytes += data.length;
        }
      },
      // The hub ends the stream (the caller no longer stands, shutdown): the consumer hears why.
      close: (code = CLOSE.goingAway, reason = '') => {
        if (!ended) onEnd?.(code, reason);
        finish();
      },
      terminate: () => {
        if (!ended) onEnd?.(CLOSE.goingAway, 'dropped');
        finish();
      },
      ping: () => (sub.answered = true),
    };
    const sub: Subscriber = { socket: peer, tenant, principal, apiKey, locale, filters: filters.length ? [...new Set(filters)] : ['*'], answered: true, queue: Promise.resolve() };
    const attached = this.closed ? Promise.resolve(finish()) : this.attach(sub);
    const iterator: AsyncIterableIterator<EventEnvelope> = {
      next: async () => {
        try {
          await attached;
        } catch (error) {
          finish();
          throw error;
        }
        const value = queued.shift();
        if (value) {
          bytes -= JSON.stringify(value).length;
          return { value, done: false };
        }
        if (ended) return { value: undefined, done: true };
        return new Promise((resolve) => (waiting = resolve));
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Registers a subscriber with its tenant's stream; resolves once events flow to it. */
  private async attach(sub: Subscriber): Promise<void> {
    const { tenant } = sub;
    let set = this.bySchema.get(tenant.schema);
    if (!set) this.bySchema.set(tenant.schema, (set = new Set()));
    set.add(sub);
    await this.feed?.watch(tenant.schema, tenant.slug);
    if (this.deps.options.feed === 'pubsub') {
      this.subscribed ??= this.deps.cache.subscribe(CHANNEL, (m) => this.heard(m)).catch((error: unknown) => {
        this.subscribed = undefined;
        throw error;
      });
      await this.subscribed;
    }
    this.heartbeat ??= setInterval(() => this.beat(), this.deps.options.heartbeatMs).unref();
  }

  private remove(sub: Subscriber): void {
    const set = this.bySchema.get(sub.tenant.schema);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) {
      this.bySchema.delete(sub.tenant.schema);
      this.feed?.unwatch(sub.tenant.schema);
    }
  }

  /** A client message: `{"type": "subscribe", "events": [...]}` narrows (or widens) the stream; `{"type": "ping"}` is answered. */
  private received(sub: Subscriber, text: string | null): void {
    let message: unknown;
    try {
      message = text === null ? null : JSON.parse(text);
    } catch {
      message = null;
    }
    const { type, events } = (typeof message === 'object' && message !== null ? message : {}) as { type?: unknown; events?: unknown };
    if (type === 'ping') return this.send(sub, { type: 'pong' });
    const refuse = (detail: Text) => this.send(sub, { type: 'error', code: 'request.invalid', detail: render(sub.locale, detail) });
    if (type !== 'subscribe') return refuse(msg('realtime.bad_message'));
    if (!Array.isArray(events) || events.length === 0 || events.length > 100) return refuse(msg('realtime.events_list', { max: 100 }));
    const bad = events.find((e) => typeof e !== 'string' || !EVENT_PATTERN.test(e));
    if (bad !== undefined) return refuse(msg('realtime.event_unknown', { value: JSON.stringify(bad) }));
    sub.filters = [...new Set(events as string[])];
    this.send(sub, { type: 'subscribed', events: sub.filters });
  }

  private heard(message: string): void {
    try {
      const { schema, envelope } = JSON.parse(message) as { schema: string; envelope: EventEnvelope };
      this.deliver(schema, [envelope]);
    } catch (error) {
      this.error(error);
    }
  }

  /** Offers events to the tenant's sockets, in order per socket. */
  deliver(schema: string, envelopes: readonly EventEnvelope[]): void {
    const subs = this.bySchema.get(schema);
    if (!subs?.size) return;
    for (const envelope of envelopes) {
      const text = JSON.stringify(envelope);
      for (const sub of subs) this.enqueue(sub, () => this.offer(sub, envelope, text));
    }
  }

  private enqueue(sub: Subscriber, step: () => Promise<void>): void {
    sub.queue = sub.queue.then(step).catch((e) => this.error(e));
  }

  private async offer(sub: Subscriber, envelope: EventEnvelope, text: string): Promise<void> {
    if (sub.socket.readyState !== OPEN) return;
    const { principal } = sub;
    if (envelope.type === 'session.revoked' && principal.sessionId !== null && envelope.data.id === principal.sessionId) return this.end(sub);
    if (!(await this.stands(sub))) return;
    if (!matchesFilter(envelope.type, sub.filters)) return;
    const permission = `${resourceOfEvent(envelope.type)}.read`;
    if (!(await this.deps.access.holds(sub.tenant, principal, permission))) return;
    this.send(sub, text);
  }

  /** Whether the socket's caller still stands; if not, the socket is closed. */
  private async stands(sub: Subscriber): Promise<boolean> {
    if (await this.deps.callers.stillStands(sub.tenant, sub.principal, sub.apiKey)) return true;
    this.end(sub);
    return false;
  }

  private end(sub: Subscriber): void {
    if (sub.socket.readyState === OPEN) sub.socket.close(CLOSE.sessionEnded, 'the session has ended');
  }

  /** Sends unless the client has stopped reading: then the socket is dropped, nothing more is kept for it. */
  private send(sub: Subscriber, message: string | object): void {
    if (sub.socket.readyState !== OPEN) return;
    if (sub.socket.bufferedAmount > this.deps.options.maxBufferedBytes) {
      sub.socket.terminate();
      return;
    }
    sub.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  private beat(): void {
    for (const subs of this.bySchema.values()) {
      for (const sub of subs) {
        if (!sub.answered) {
          sub.socket.terminate();
          continue;
        }
        sub.answered = false;
        sub.socket.ping();
        this.enqueue(sub, async () => void (await this.stands(sub)));
      }
    }
  }

  /** A change to sessions, users or keys of a tenant: its sockets are checked again at once (ChangeListener). */
  forget(tenant: TenantContext, change: Change): undefined {
    // The tenant replaced, suspended or deleted: its sockets close (a reconnect meets its new state).
    if (change.kind === 'tenant') for (const sub of this.bySchema.get(tenant.schema) ?? []) this.end(sub);
    if (change.kind !== 'sessions' && change.kind !== 'user' && change.kind !== 'api_keys' && change.kind !== 'settings') return undefined;
    for (const sub of this.bySchema.get(tenant.schema) ?? []) this.enqueue(sub, async () => void (await this.stands(sub)));
    return undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const subs of this.bySchema.values()) for (const sub of subs) sub.socket.close(CLOSE.goingAway, 'shutting down');
    await this.feed?.stop();
  }

  private error(error: unknown): void {
    this.deps.onError?.(error);
  }
}

export const EVENT_PATTERN = /^(\*|[a-z_]{1,40}\.(\*|[a-z_]{1,40}))$/;
