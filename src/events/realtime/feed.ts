import { sql, type Kysely } from 'kysely';
import { tenantDb } from '../../db/database.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import type { EventEnvelope } from '../dispatcher.js';
import { PollLoop } from '../poll-loop.js';

const EVENTS_PER_READ = 1_000;
/** How long a missing `seq` is looked for again: the transaction holding it may still commit. */
const HOLE_MS = 120_000;
const HOLES_MAX = 10_000;

interface Watched {
  readonly slug: string;
  /** The highest `seq` read; null until the starting point is known. */
  cursor: number | null;
  /** Settles once the starting point is known. */
  ready: Promise<void>;
  /** Numbers below the cursor not seen yet (a transaction still open when they were passed), until when to look for them. */
  readonly holes: Map<number, number>;
}

/**
 * The realtime feed without Redis: this instance reads, for each tenant it has sockets of, the
 * events committed since its last read, straight from the tenant's outbox (every instance
 * reads them all; none claims them). Woken after a local commit that wrote events, and every
 * `pollMs` for other instances'. `seq` is taken at insert but seen at commit, so a number
 * skipped over is a hole that is looked for again until its transaction has surely ended.
 */
export class OutboxFeed {
  private readonly watched = new Map<string, Watched>();
  private readonly loop: PollLoop;

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    pollMs: number,
    private readonly deliver: (schema: string, envelopes: EventEnvelope[]) => void,
    private readonly onError: (error: unknown) => void,
  ) {
    this.loop = new PollLoop(pollMs, () => this.pass(), onError);
  }

  /** Starts reading `schema`'s events from those committed after now; resolves once it reads them. */
  watch(schema: string, slug: string): Promise<void> {
    const known = this.watched.get(schema);
    if (known) return known.ready;
    const watched: Watched = { slug, cursor: null, holes: new Map(), ready: Promise.resolve() };
    watched.ready = (async () => {
      const top = await tenantDb(this.db, schema).selectFrom('outbox_events').select((eb) => eb.fn.max('seq').as('seq')).executeTakeFirst();
      watched.cursor = Number(top?.seq ?? 0);
      this.loop.start();
    })();
    watched.ready.catch(() => this.watched.get(schema) === watched && this.watched.delete(schema));
    this.watched.set(schema, watched);
    return watched.ready;
  }

  unwatch(schema: string): void {
    this.watched.delete(schema);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Reads every watched tenant once; true when one had more than a read takes. */
  private async pass(): Promise<boolean> {
    let more = false;
    for (const [schema, watched] of [...this.watched]) {
      try {
        if (await this.read(schema, watched)) more = true;
      } catch (error) {
        this.onError(error);
      }
    }
    return more;
  }

  private async read(schema: string, watched: Watched): Promise<boolean> {
    const db = tenantDb(this.db, schema);
    if (watched.cursor === null) return false;
    const now = Date.now();
    for (const [seq, until] of watched.holes) if (until < now) watched.holes.delete(seq);
    const holes = [...watched.holes.keys()];
    const rows = await db
      .selectFrom('outbox_events')
      .select(['seq', 'id', 'type', 'actor_user_id', 'data', 'occurred_at'])
      .where((eb) => (holes.length ? eb.or([eb('seq', '>', String(watched.cursor)), eb('seq', '=', sql<string>`ANY(${holes.map(String)}::bigint[])`)]) : eb('seq', '>', String(watched.cursor))))
      .orderBy('seq')
      .limit(EVENTS_PER_READ)
      .execute();
    if (rows.length === 0 || !this.watched.has(schema)) return false;
    const fresh = rows.filter((row) => {
      const seq = Number(row.seq);
      if (watched.holes.delete(seq)) return true;
      if (seq <= watched.cursor!) return false;
      for (let missing = watched.cursor! + 1; missing < seq && watched.holes.size < HOLES_MAX; missing++) watched.holes.set(missing, now + HOLE_MS);
      watched.cursor = seq;
      return true;
    });
    this.deliver(
      schema,
      fresh.map((e) => ({ id: e.id, type: e.type, tenant_slug: watched.slug, occurred_at: e.occurred_at.toISOString(), actor_user_id: e.actor_user_id, data: e.data as Record<string, unknown> })),
    );
    return rows.length === EVENTS_PER_READ;
  }
}
