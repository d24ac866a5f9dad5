import type { Cache } from './cache.js';

const CHANNEL = 'invalidate';

/**
 * An in-process copy of hot data (tenants by slug, sessions, permissions), kept coherent
 * across instances: every invalidation is applied here and published on the shared cache's
 * channel. Whenever that channel might drop messages (Redis down), nothing local is trusted:
 * reads miss and go to PostgreSQL, so a revocation is never ignored.
 */
export class LocalCache {
  private readonly entries = new Map<string, { value: unknown; expiresAt: number }>();
  /** Bumped by every invalidation: a value loaded across one is not kept (it may be stale). */
  private generation = 0;

  constructor(
    private readonly shared: Cache,
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 50_000,
    private readonly onPublishError: (error: unknown) => void = () => {},
  ) {}

  async start(): Promise<void> {
    await this.shared.subscribe(CHANNEL, (prefix) => this.dropLocal(prefix));
  }

  get<T>(key: string): T | undefined {
    if (!this.shared.deliveringInvalidations) {
      this.entries.clear();
      return undefined;
    }
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value as T;
  }

  set(key: string, value: unknown): void {
    if (!this.shared.deliveringInvalidations) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expiresAt: Date.now() + this.ttlMs });
  }

  /** The cached value, or the loader's (stored unless an invalidation ran meanwhile). */
  async load<T>(key: string, loader: () => Promise<T>): Promise<T> {
    const cached = this.get<T>(key);
    if (cached !== undefined) return cached;
    const generation = this.generation;
    const value = await loader();
    if (generation === this.generation) this.set(key, value);
    return value;
  }

  /** Drops every key starting with `prefix`, here and on every instance. */
  async invalidate(prefix: string): Promise<void> {
    this.dropLocal(prefix);
    try {
      await this.shared.publish(CHANNEL, prefix);
    } catch (error) {
      this.onPublishError(error);
    }
  }

  private dropLocal(prefix: string): void {
    this.generation++;
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }
}
