import type { Cache } from './cache.js';

const CHANNEL = 'invalidate';

/** The invalidation that drops every key (sent when too many were left unpublished to list). */
const EVERYTHING = '';

/**
 * An in-process copy of hot data (tenants by slug, sessions, permissions), kept coherent
 * across instances: every invalidation is applied here and published on the shared cache's
 * channel. Whenever that channel might drop messages (Redis down), nothing local is trusted:
 * reads miss and go to PostgreSQL, so a revocation is never ignored. Nor is anything kept
 * from before a break in delivery (the subscription dropped and came back between two reads),
 * and an invalidation that could not be published is published again until it is.
 *
 * An invalidation names one key, or every key under a prefix when it ends with `:`
 * (`access:tenant_x:`). Dropping one key costs a map lookup whatever the cache holds (a
 * refresh drops its session's key: a scan of every entry made each refresh cost more as the
 * cache filled); a prefix scans the entries.
 */
export class LocalCache {
  private readonly entries = new Map<string, { value: unknown; expiresAt: number }>();
  /** Invalidations so far, and the most recent of them (a ring): a value loaded across an
   * invalidation of its key is not kept (it may be stale); across others' it is. */
  private invalidations = 0;
  private readonly recent: string[] = new Array<string>(RECENT);
  /** The shared cache's delivery epoch the entries were made under. */
  private epoch: number;
  /** Invalidations whose publication failed, published again every RETRY_MS until they go out. */
  private readonly unpublished = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(
    private readonly shared: Cache,
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 50_000,
    private readonly onPublishError: (error: unknown) => void = () => {},
  ) {
    this.epoch = shared.deliveryEpoch;
  }

  async start(): Promise<void> {
    await this.shared.subscribe(CHANNEL, (prefix) => this.dropLocal(prefix));
  }

  /** Whether entries may be used: not while invalidations may be missed, none from before a break in their delivery. */
  private trusted(): boolean {
    if (!this.shared.deliveringInvalidations) {
      this.entries.clear();
      return false;
    }
    if (this.shared.deliveryEpoch !== this.epoch) {
      this.entries.clear();
      this.epoch = this.shared.deliveryEpoch;
    }
    return true;
  }

  get<T>(key: string): T | undefined {
    const entry = this.trusted() ? this.entries.get(key) : undefined;
    const counts = this.countsOf(key);
    if (!entry || entry.expiresAt <= Date.now()) {
      if (entry) this.entries.delete(key);
      counts.misses++;
      return undefined;
    }
    counts.hits++;
    return entry.value as T;
  }

  /** Reads so far by cache (the key's prefix before its first `:`): the /metrics hit ratios. */
  readonly counts = new Map<string, { hits: number; misses: number }>();

  private countsOf(key: string): { hits: number; misses: number } {
    const colon = key.indexOf(':');
    const cache = colon > 0 ? key.slice(0, colon) : 'other';
    let counts = this.counts.get(cache);
    if (!counts) this.counts.set(cache, (counts = { hits: 0, misses: 0 }));
    return counts;
  }

  /** Keeps `value` for `ttlMs` (the cache's own by default). */
  set(key: string, value: unknown, ttlMs = this.ttlMs): void {
    if (!this.trusted()) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expiresAt: Date.now() + ttlMs });
  }

  /** The cached value, or the loader's (stored unless an invalidation, or a break in their delivery, came meanwhile). */
  async load<T>(key: string, loader: () => Promise<T>, ttlMs = this.ttlMs): Promise<T> {
    const cached = this.get<T>(key);
    if (cached !== undefined) return cached;
    const since = this.invalidations;
    const epoch = this.shared.deliveryEpoch;
    const value = await loader();
    if (this.shared.deliveryEpoch === epoch && !this.invalidatedSince(since, key)) this.set(key, value, ttlMs);
    return value;
  }

  /** Whether an invalidation since the count `since` may have covered `key` (yes when too many ran to tell). */
  private invalidatedSince(since: number, key: string): boolean {
    if (this.invalidations - since > RECENT) return true;
    for (let n = since; n < this.invalidations; n++) if (covers(this.recent[n % RECENT]!, key)) return true;
    return false;
  }

  /** Drops `key` (or every key under it, when it ends with `:`), here and on every instance. */
  async invalidate(key: string): Promise<void> {
    this.dropLocal(key);
    try {
      await this.shared.publish(CHANNEL, key);
    } catch (error) {
      this.onPublishError(error);
      this.publishLater(key);
    }
  }

  private dropLocal(key: string): void {
    this.recent[this.invalidations++ % RECENT] = key;
    if (key === EVERYTHING) this.entries.clear();
    else if (!key.endsWith(':')) this.entries.delete(key);
    else for (const k of this.entries.keys()) if (covers(key, k)) this.entries.delete(k);
  }

  private publishLater(key: string): void {
    if (this.unpublished.has(EVERYTHING)) return;
    if (this.unpublished.size >= UNPUBLISHED_MAX) {
      this.unpublished.clear();
      this.unpublished.add(EVERYTHING);
    } else this.unpublished.add(key);
    this.retry ??= setInterval(() => void this.publishPending(), RETRY_MS).unref();
  }

  /** Publishes what failed to go out, oldest first; stops at the first failure (the next round retries). */
  private async publishPending(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const key of this.unpublished) {
        await this.shared.publish(CHANNEL, key);
        this.unpublished.delete(key);
      }
      clearInterval(this.retry);
      this.retry = undefined;
    } catch {
      // Still unreachable: the next round tries again.
    } finally {
      this.retrying = false;
    }
  }

  /** Stops publishing again what failed (on shutdown). */
  close(): void {
    clearInterval(this.retry);
    this.retry = undefined;
  }
}

/** Invalidations remembered for loads in flight (a load lasts one round trip to PostgreSQL). */
const RECENT = 1024;
/** Unpublished invalidations kept one by one; past this many, one that drops everything goes instead. */
const UNPUBLISHED_MAX = 1_000;
const RETRY_MS = 500;

const covers = (invalidation: string, key: string) =>
  invalidation === EVERYTHING || (invalidation.endsWith(':') ? key.startsWith(invalidation) : key === invalidation);
