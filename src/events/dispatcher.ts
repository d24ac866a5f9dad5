import { eventDispatchLag, eventsDispatched, webhookDeliveries } from '../observability/metrics.js';
import { Webhook } from 'standardwebhooks';
import { sql, type Kysely } from 'kysely';
import { tenantDb } from '../db/database.js';
import { LOCK_CLASS } from '../db/platform.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { matchesFilter } from './catalogue.js';
import { PollLoop } from './poll-loop.js';
import { openEndpoint, type AttemptResult } from './webhooks/sender.js';
import type { WebhookService } from './webhooks/service.js';

/** The envelope of SPEC §11, as sockets and endpoints receive it. */
export interface EventEnvelope {
  readonly id: string;
  readonly type: string;
  readonly tenant_slug: string;
  readonly occurred_at: string;
  readonly actor_user_id: string | null;
  readonly data: Record<string, unknown>;
}

export interface DispatcherOptions {
  /** How often the shared signals are read when nothing woke the dispatcher (other instances' events). */
  readonly pollMs: number;
  /** Delays between attempts of a failing delivery; after the last, the delivery is failed. */
  readonly retryDelaysMs: readonly number[];
  /** An endpoint failing for this long (no success since) is disabled. */
  readonly disableAfterMs: number;
  readonly timeoutMs: number;
  /** Requests in flight at once, over every endpoint (each endpoint has one at a time, in order). */
  readonly concurrency: number;
  readonly allowPrivateNetworks: boolean;
  /** Dispatched events and finished deliveries are kept this long. */
  readonly retentionMs: number;
}

/** About a day: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Standard Webhooks' schedule). */
export const DEFAULT_RETRY_DELAYS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];

const EVENTS_PER_PASS = 500;
const DELIVERIES_PER_ENDPOINT = 20;
const SCHEMAS_PER_PASS = 100;
const SCHEMAS_AT_ONCE = 4;
const PRUNE_EVERY_MS = 3_600_000;

interface Due {
  readonly id: string;
  readonly webhook_id: string;
  readonly event_id: string;
  readonly payload: string;
  readonly attempts: number;
  readonly next_attempt_at: Date;
  readonly url: string;
  readonly encrypted_secret: string;
  readonly failing_since: Date | null;
}

/**
 * Takes events out of every tenant's outbox and delivers them: woken after a local commit
 * that wrote events, and every `pollMs` for other instances'. Work is found in
 * `shared.event_signals`; a tenant is dispatched by one instance at a time (an advisory lock,
 * events claimed `FOR UPDATE SKIP LOCKED`), each event fanned out once to the endpoints that
 * want it and to `onEvent` (the realtime streams), then each endpoint's deliveries go out in
 * event order, one request at a time per endpoint, retried on the schedule until they succeed.
 */
export class EventDispatcher {
  private stopping = false;
  private readonly loop: PollLoop;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly pruned = new Map<string, number>();
  private readonly slugs = new Map<string, string | null>();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly webhooks: WebhookService,
    private readonly options: DispatcherOptions,
    private readonly hooks: { onEvent?: (envelope: EventEnvelope, schema: string) => void; onError?: (error: unknown) => void } = {},
  ) {
    this.loop = new PollLoop(options.pollMs, () => this.pass(), (error) => this.hooks.onError?.(error));
  }

  start(): void {
    this.stopping = false;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
  }

  /** Looks for work now instead of at the next poll. */
  wake(): void {
    this.loop.wake();
  }

  /** One look at the due signals; true when some tenant had work done (look again at once). */
  async pass(): Promise<boolean> {
    const due = await sql<{ schema_name: string; upto: string }>`
      SELECT schema_name, max(id) AS upto FROM shared.event_signals WHERE due_at <= now()
      GROUP BY schema_name ORDER BY min(id) LIMIT ${SCHEMAS_PER_PASS}`.execute(this.db);
    let busy = false;
    let next = 0;
    const worker = async () => {
      while (next < due.rows.length && !this.stopping) {
        const { schema_name: schema, upto } = due.rows[next++]!;
        try {
          if (await this.tenant(schema, upto)) busy = true;
        } catch (error) {
          this.hooks.onError?.(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SCHEMAS_AT_ONCE, due.rows.length) }, worker));
    return busy;
  }

  /** Dispatches and delivers one tenant's due work; false when another instance has it. */
  private async tenant(schema: string, upto: string): Promise<boolean> {
    const slug = await this.slugOf(schema);
    const tdb = tenantDb(this.db, schema);
    if (slug === null) {
      // Not a tenant (a spare, or deleted): nothing to send.
      await this.db.withSchema('shared').deleteFrom('event_signals').where('schema_name', '=', schema).where('id', '<=', upto).execute();
      return false;
    }
    const fanned = await this.fanOut(tdb, schema, slug);
    if (fanned === null) return false;
    const more = fanned.length === EVENTS_PER_PASS;
    const now = Date.now();
    for (const envelope of fanned) {
      eventDispatchLag.observe((now - Date.parse(envelope.occurred_at)) / 1000);
      this.hooks.onEvent?.(envelope, schema);
    }
    eventsDispatched.inc(fanned.length);
    await this.deliver(tdb, schema);
    await this.prune(tdb, schema);
    // The signals handled; then the next time this tenant has work, if any.
    await this.db.withSchema('shared').deleteFrom('event_signals').where('schema_name', '=', schema).where('id', '<=', upto).where('due_at', '<=', new Date()).execute();
    const pending = await tdb.selectFrom('webhook_deliveries').select((eb) => eb.fn.min('next_attempt_at').as('at')).where('status', '=', 'pending').executeTakeFirst();
    const at = more ? new Date() : (pending?.at as Date | null | undefined);
    if (at) {
      await sql`INSERT INTO shared.event_signals (schema_name, due_at) SELECT ${schema}, ${at}
                WHERE NOT EXISTS (SELECT 1 FROM shared.event_signals WHERE schema_name = ${schema} AND due_at <= ${at})`.execute(this.db);
    }
    return fanned.length > 0 || more;
  }

  private async slugOf(schema: string): Promise<string | null> {
    if (this.slugs.has(schema)) return this.slugs.get(schema)!;
    const row = await this.db.withSchema('shared').selectFrom('tenants').select('slug').where('schema_name', '=', schema).executeTakeFirst();
    const slug = row?.slug ?? null;
    if (slug !== null) this.slugs.set(schema, slug);
    return slug;
  }

  /** Claims the tenant's undispatched events in order and makes each endpoint's deliveries; null when another instance holds the tenant. */
  private async fanOut(tdb: Kysely<TenantDatabase>, schema: string, slug: string): Promise<EventEnvelope[] | null> {
    return tdb.transaction().execute(async (trx) => {
      const lock = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LOCK_CLASS.eventDispatch}, hashtext(${schema})) AS ok`.execute(trx);
      if (!lock.rows[0]!.ok) return null;
      const events = await trx
        .selectFrom('outbox_events')
        .select(['seq', 'id', 'type', 'actor_user_id', 'data', 'occurred_at'])
        .where('dispatched_at', 'is', null)
        .orderBy('seq')
        .limit(EVENTS_PER_PASS)
        .forUpdate()
        .skipLocked()
        .execute();
      if (events.length === 0) return [];
      const endpoints = await trx.selectFrom('webhooks').select(['id', 'events']).where('enabled', '=', true).execute();
      const envelopes: EventEnvelope[] = [];
      const deliveries = [];
      for (const e of events) {
        const envelope: EventEnvelope = { id: e.id, type: e.type, tenant_slug: slug, occurred_at: e.occurred_at.toISOString(), actor_user_id: e.actor_user_id, data: e.data as Record<string, unknown> };
        envelopes.push(envelope);
        const payload = JSON.stringify(envelope);
        for (const w of endpoints) {
          if (matchesFilter(e.type, w.events)) deliveries.push({ webhook_id: w.id, event_seq: e.seq, event_id: e.id, event_type: e.type, payload });
        }
      }
      for (let i = 0; i < deliveries.length; i += 500) await trx.insertInto('webhook_deliveries').values(deliveries.slice(i, i + 500)).execute();
      await trx
        .updateTable('outbox_events')
        .set({ dispatched_at: new Date() })
        .where('seq', 'in', events.map((e) => e.seq))
        .execute();
      return envelopes;
    });
  }

  /** Sends what is due, endpoint by endpoint in event order, until nothing due is left. */
  private async deliver(tdb: Kysely<TenantDatabase>, schema: string): Promise<void> {
    for (let round = 0; round < 50 && !this.stopping; round++) {
      const rows = await sql<Due>`
        SELECT d.id, d.webhook_id, d.event_id, d.payload, d.attempts, d.next_attempt_at, w.url, w.encrypted_secret, w.failing_since
        FROM ${sql.id(schema, 'webhooks')} w CROSS JOIN LATERAL (
          SELECT id, webhook_id, event_id, payload, attempts, next_attempt_at, event_seq FROM ${sql.id(schema, 'webhook_deliveries')}
          WHERE webhook_id = w.id AND status = 'pending' ORDER BY event_seq LIMIT ${DELIVERIES_PER_ENDPOINT}) d
        WHERE w.enabled
        ORDER BY d.webhook_id, d.event_seq`.execute(tdb);
      const now = Date.now();
      // Per endpoint, the run of due deliveries from its first pending one: a delivery not yet
      // due (waiting for a retry, or leased by an instance sending it) holds back the rest.
      const batches = new Map<string, Due[]>();
      const held = new Set<string>();
      for (const row of rows.rows) {
        if (held.has(row.webhook_id)) continue;
        if (new Date(row.next_attempt_at).getTime() > now) {
          held.add(row.webhook_id);
          continue;
        }
        batches.set(row.webhook_id, [...(batches.get(row.webhook_id) ?? []), row]);
      }
      const runs = [...batches.values()].filter((b) => b.length > 0);
      if (runs.length === 0) return;
      // Long enough for the longest run to be sent; if this instance dies, another sends them when it ends.
      const leaseMs = this.options.timeoutMs * Math.max(...runs.map((r) => r.length)) + 5_000;
      const leased = await tdb
        .updateTable('webhook_deliveries')
        .set({ next_attempt_at: sql`now() + ${`${leaseMs} milliseconds`}::interval` })
        .where('id', 'in', runs.flat().map((d) => d.id))
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', sql<Date>`now()`)
        .returning('id')
        .execute();
      const mine = new Set(leased.map((r) => r.id));
      // A run is sent up to its first delivery another instance leased at the same moment; what
      // this one leased behind that is freed at once, not left waiting for its lease to end.
      const sent = runs.map((run) => {
        const lost = run.findIndex((d) => !mine.has(d.id));
        return lost === -1 ? run : run.slice(0, lost);
      });
      const sending = new Set(sent.flat().map((d) => d.id));
      const freed = [...mine].filter((id) => !sending.has(id));
      if (freed.length) await tdb.updateTable('webhook_deliveries').set({ next_attempt_at: sql`now()` }).where('id', 'in', freed).where('status', '=', 'pending').execute();
      await Promise.all(sent.map((run) => this.sendRun(tdb, schema, run)));
    }
  }

  /** An endpoint's run: in order, stopping at the first failure (the rest wait behind it). */
  private async sendRun(tdb: Kysely<TenantDatabase>, schema: string, run: Due[]): Promise<void> {
    if (run.length === 0) return;
    const first = run[0]!;
    let signer: { sign: (id: string, at: Date, body: string) => string };
    try {
      const secrets = this.webhooks.open(schema, { id: first.webhook_id, encrypted_secret: first.encrypted_secret });
      const keys = [secrets.current, ...(secrets.previous && secrets.previous_until && new Date(secrets.previous_until).getTime() > Date.now() ? [secrets.previous] : [])].map((s) => new Webhook(s));
      signer = { sign: (id, at, body) => keys.map((k) => k.sign(id, at, body)).join(' ') };
    } catch (error) {
      await this.failed(tdb, schema, run, 0, { status: null, error: `cannot sign: ${(error as Error).message}` });
      return;
    }
    const endpoint = await openEndpoint(first.url, { allowPrivate: this.options.allowPrivateNetworks, timeoutMs: this.options.timeoutMs });
    if (!('post' in endpoint)) {
      await this.failed(tdb, schema, run, 0, endpoint);
      return;
    }
    // Successes are recorded together (one statement per run, not per event): if this instance
    // dies before, they are sent again (at least once).
    const succeeded: { id: string; status: number }[] = [];
    try {
      for (let i = 0; i < run.length; i++) {
        const d = run[i]!;
        const at = new Date();
        const result = await this.limited(() => endpoint.post(d.payload, { 'webhook-id': d.event_id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signer.sign(d.event_id, at, d.payload) }));
        if (result.status !== null && result.status >= 200 && result.status < 300) {
          succeeded.push({ id: d.id, status: result.status });
          continue;
        }
        await this.succeeded(tdb, schema, first, succeeded);
        await this.failed(tdb, schema, run, i, result);
        return;
      }
    } finally {
      endpoint.close();
    }
    await this.succeeded(tdb, schema, first, succeeded);
  }

  /** Records a run's successes, and the endpoint healthy again if it was failing. */
  private async succeeded(tdb: Kysely<TenantDatabase>, schema: string, first: Due, done: readonly { id: string; status: number }[]): Promise<void> {
    if (done.length === 0) return;
    webhookDeliveries.inc({ outcome: 'succeeded' }, done.length);
    const now = new Date();
    await sql`
      UPDATE ${sql.id(schema, 'webhook_deliveries')} d SET status = 'succeeded', attempts = d.attempts + 1, last_status_code = v.status, last_error = NULL, delivered_at = ${now}, updated_at = ${now}
      FROM unnest(${done.map((x) => x.id)}::uuid[], ${done.map((x) => x.status)}::int[]) AS v(id, status) WHERE d.id = v.id`.execute(tdb);
    if (first.failing_since) await this.webhooks.healthy(schema, first.webhook_id);
  }

  /** Records a failed attempt of run[i] (retry later, or failed for good) and frees the rest of the run. */
  private async failed(tdb: Kysely<TenantDatabase>, schema: string, run: Due[], i: number, result: AttemptResult): Promise<void> {
    const d = run[i]!;
    const delays = this.options.retryDelaysMs;
    const last = d.attempts >= delays.length;
    webhookDeliveries.inc({ outcome: last ? 'failed' : 'retrying' });
    await tdb
      .updateTable('webhook_deliveries')
      .set({
        attempts: sql`attempts + 1`,
        last_status_code: result.status,
        last_error: result.error ?? `answered ${result.status}`,
        status: last ? 'failed' : 'pending',
        next_attempt_at: last ? new Date() : new Date(Date.now() + delays[d.attempts]!),
        updated_at: new Date(),
      })
      .where('id', '=', d.id)
      .execute();
    const rest = run.slice(i + 1).map((r) => r.id);
    if (rest.length) await tdb.updateTable('webhook_deliveries').set({ next_attempt_at: new Date() }).where('id', 'in', rest).where('status', '=', 'pending').execute();
    await this.webhooks.failing(schema, d.webhook_id, result.error ?? `answered ${result.status}`, this.options.disableAfterMs);
  }

  /** Runs `send` when fewer than `concurrency` requests are in flight. */
  private async limited<T>(send: () => Promise<T>): Promise<T> {
    while (this.inFlight >= this.options.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    try {
      return await send();
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  /** At most hourly per tenant: dispatched events and finished deliveries past the retention. */
  private async prune(tdb: Kysely<TenantDatabase>, schema: string): Promise<void> {
    const last = this.pruned.get(schema) ?? 0;
    if (Date.now() - last < PRUNE_EVERY_MS) return;
    this.pruned.set(schema, Date.now());
    const before = new Date(Date.now() - this.options.retentionMs);
    await tdb.deleteFrom('outbox_events').where('dispatched_at', '<', before).execute();
    await tdb.deleteFrom('webhook_deliveries').where('status', '<>', 'pending').where('updated_at', '<', before).execute();
  }
}
