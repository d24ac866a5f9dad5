/**
 * Shared cache and fan-out channel. In-process by default; Redis when REDIS_URL is set, so
 * every instance sees the same counters and every instance hears every invalidation.
 * Callers treat it as a cache: a failure reads as a miss, never as permission.
 */
export interface Cache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /** Adds 1 to a counter that expires `windowSeconds` after its first increment. */
  increment(key: string, windowSeconds: number): Promise<{ count: number; ttlSeconds: number }>;
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once the subscription is live. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /**
   * False while invalidations might be missed (Redis subscriber disconnected): local copies
   * must not be trusted then.
   */
  readonly deliveringInvalidations: boolean;
  /**
   * Counts the starts of delivery (each (re)subscription): a local copy made under an earlier
   * count may have missed invalidations sent while delivery was broken.
   */
  readonly deliveryEpoch: number;
  /** Throws when the backing store does not answer (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

interface Entry {
  readonly value: string;
  readonly expiresAt: number;
}

/** The single-instance implementation: a bounded map with expiry, and local fan-out. */
export class MemoryCache implements Cache {
  private readonly entries = new Map<string, Entry>();
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  readonly deliveringInvalidations = true;
  readonly deliveryEpoch = 0;

  constructor(
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.value;
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt: this.now() + ttlSeconds * 1000 });
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) this.entries.delete(key);
  }

  async increment(key: string, windowSeconds: number): Promise<{ count: number; ttlSeconds: number }> {
    const entry = this.live(key);
    const count = (entry ? Number(entry.value) : 0) + 1;
    const expiresAt = entry?.expiresAt ?? this.now() + windowSeconds * 1000;
    this.entries.set(key, { value: String(count), expiresAt });
    return { count, ttlSeconds: Math.max(1, Math.ceil((expiresAt - this.now()) / 1000)) };
  }

  async publish(channel: string, message: string): Promise<void> {
    for (const handler of this.handlers.get(channel) ?? []) handler(message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const set = this.handlers.get(channel) ?? new Set();
    set.add(handler);
    this.handlers.set(channel, set);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.entries.clear();
    this.handlers.clear();
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}
