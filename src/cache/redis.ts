import { Redis } from 'ioredis';
import type { Cache } from './cache.js';

export interface RedisCacheOptions {
  readonly url: string;
  /** Prefix of every key and channel, so several deployments may share one Redis. */
  readonly prefix?: string;
  readonly onError?: (error: Error) => void;
}

/**
 * Redis-backed cache. Commands fail fast while Redis is unreachable (no offline queue), so a
 * caller falls back to PostgreSQL at once instead of waiting; a second connection carries
 * the subscriptions, and `deliveringInvalidations` is false whenever it is not subscribed.
 */
export class RedisCache implements Cache {
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private subscribed = false;
  private epoch = 0;

  constructor(options: RedisCacheOptions) {
    this.prefix = options.prefix ?? 'system-service:';
    const common = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      commandTimeout: 1000,
      retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
    };
    this.client = new Redis(options.url, common);
    this.subscriber = new Redis(options.url, { ...common, commandTimeout: undefined });
    const onError = options.onError ?? (() => {});
    this.client.on('error', onError);
    this.subscriber.on('error', onError);
    // Messages published while disconnected are lost: until resubscribed, nothing local is trusted.
    this.subscriber.on('close', () => (this.subscribed = false));
    this.subscriber.on('ready', () => void this.resubscribe());
    this.subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel.slice(this.prefix.length)) ?? []) handler(message);
    });
  }

  get deliveringInvalidations(): boolean {
    return this.subscribed;
  }

  get deliveryEpoch(): number {
    return this.epoch;
  }

  /** Connects both connections; a Redis that is down at start only delays them (they retry). */
  async connect(): Promise<void> {
    await Promise.allSettled([this.client.connect(), this.subscriber.connect()]);
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.client.get(this.prefix + key)) ?? undefined;
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.client.set(this.prefix + key, value, 'EX', ttlSeconds);
  }

  async delete(...keys: string[]): Promise<void> {
    if (keys.length) await this.client.del(...keys.map((k) => this.prefix + k));
  }

  async increment(key: string, windowSeconds: number): Promise<{ count: number; ttlSeconds: number }> {
    const k = this.prefix + key;
    const result = await this.client.multi().incr(k).expire(k, windowSeconds, 'NX').ttl(k).exec();
    if (!result) throw new Error('redis transaction aborted');
    const count = Number(result[0]?.[1]);
    const ttl = Number(result[2]?.[1]);
    return { count, ttlSeconds: ttl > 0 ? ttl : windowSeconds };
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(this.prefix + channel, message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const set = this.handlers.get(channel) ?? new Set();
    set.add(handler);
    this.handlers.set(channel, set);
    if (this.subscriber.status === 'ready') {
      await this.subscriber.subscribe(this.prefix + channel);
      this.delivering();
    }
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    this.subscribed = false;
    this.client.disconnect();
    this.subscriber.disconnect();
  }

  /** Delivery (re)starts: a new epoch when it had stopped (what came meanwhile was lost). */
  private delivering(): void {
    if (!this.subscribed) this.epoch++;
    this.subscribed = true;
  }

  private async resubscribe(): Promise<void> {
    const channels = [...this.handlers.keys()].map((c) => this.prefix + c);
    try {
      if (channels.length) await this.subscriber.subscribe(...channels);
      this.delivering();
    } catch {
      this.subscribed = false;
    }
  }
}
