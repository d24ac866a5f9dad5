import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryCache, type Cache } from '../src/cache/cache.js';
import { LocalCache } from '../src/cache/local.js';
import { RedisCache } from '../src/cache/redis.js';
import type { Redis } from 'ioredis';
import { describeWithRedis, redisUrl } from './support/redis.js';

const opened: Cache[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
});

async function redisCache(url = redisUrl()): Promise<RedisCache> {
  const cache = new RedisCache({ url, prefix: `test-${randomUUID()}:` });
  await cache.connect();
  opened.push(cache);
  return cache;
}

const until = async (check: () => boolean, ms = 2000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return check();
};

/** One conformance suite, run against both implementations. */
const conformance = (_name: string, make: () => Promise<Cache>) => {
  it('stores, reads and deletes values', async () => {
    const cache = await make();
    expect(await cache.get('missing')).toBeUndefined();
    await cache.set('a', 'one', 60);
    await cache.set('b', 'two', 60);
    expect(await cache.get('a')).toBe('one');
    await cache.delete('a', 'b');
    expect(await cache.get('a')).toBeUndefined();
    expect(await cache.get('b')).toBeUndefined();
  });

  it('expires values after their TTL', async () => {
    const cache = await make();
    await cache.set('short', 'x', 1);
    expect(await cache.get('short')).toBe('x');
    await new Promise((r) => setTimeout(r, 1100));
    expect(await cache.get('short')).toBeUndefined();
  });

  it('counts within a fixed window that starts at the first increment', async () => {
    const cache = await make();
    const first = await cache.increment('counter', 60);
    expect(first.count).toBe(1);
    expect(first.ttlSeconds).toBeGreaterThan(55);
    expect((await cache.increment('counter', 60)).count).toBe(2);
    expect((await cache.increment('counter', 60)).count).toBe(3);
    expect((await cache.increment('other', 60)).count).toBe(1);
    await cache.increment('brief', 1);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await cache.increment('brief', 1)).count).toBe(1);
  });

  it('delivers published messages to subscribers', async () => {
    const cache = await make();
    const got: string[] = [];
    await cache.subscribe('events', (m) => got.push(m));
    expect(cache.deliveringInvalidations).toBe(true);
    await cache.publish('events', 'hello');
    await cache.publish('elsewhere', 'ignored');
    expect(await until(() => got.length === 1)).toBe(true);
    expect(got).toEqual(['hello']);
  });

  it('answers ping', async () => {
    await expect((await make()).ping()).resolves.toBeUndefined();
  });
};
describe('memory cache', () => conformance('memory', async () => new MemoryCache()));
describeWithRedis('redis cache', () => conformance('redis', () => redisCache()));

describeWithRedis('redis fan-out between instances', () => {
  it('an invalidation on one instance drops the local copy on another', async () => {
    const prefix = `fanout-${randomUUID()}:`;
    const a = new RedisCache({ url: redisUrl(), prefix });
    const b = new RedisCache({ url: redisUrl(), prefix });
    opened.push(a, b);
    await Promise.all([a.connect(), b.connect()]);
    const localA = new LocalCache(a);
    const localB = new LocalCache(b);
    await Promise.all([localA.start(), localB.start()]);
    localA.set('session:x:1', { live: true });
    localB.set('session:x:1', { live: true });
    await localA.invalidate('session:x:');
    expect(localA.get('session:x:1')).toBeUndefined();
    expect(await until(() => localB.get('session:x:1') === undefined, 1000)).toBe(true);
  });
});

describeWithRedis('redis: delivery broken and restored', () => {
  async function pair() {
    const prefix = `epoch-${randomUUID()}:`;
    const a = new RedisCache({ url: redisUrl(), prefix });
    const b = new RedisCache({ url: redisUrl(), prefix });
    opened.push(a, b);
    await Promise.all([a.connect(), b.connect()]);
    const failures: unknown[] = [];
    const localA = new LocalCache(a, 60_000, 50_000, (error) => failures.push(error));
    const localB = new LocalCache(b);
    await Promise.all([localA.start(), localB.start()]);
    // The connections themselves (a test reaches in to break one on purpose).
    const connections = (cache: RedisCache) => cache as unknown as { client: Redis; subscriber: Redis };
    return { a: connections(a), b, localA, localB, subscriberOf: (cache: RedisCache) => connections(cache).subscriber, failures };
  }

  it('keeps nothing from before its subscription dropped, even with no read while it was down', async () => {
    const { b, localA, localB, subscriberOf } = await pair();
    localB.set('session:x:1', { live: true });
    expect(localB.get('session:x:1')).toEqual({ live: true });
    const subscriber = subscriberOf(b);
    subscriber.disconnect();
    expect(await until(() => !b.deliveringInvalidations)).toBe(true);
    // Sent while b is not listening: b never hears it.
    await localA.invalidate('session:x:1');
    await subscriber.connect();
    expect(await until(() => b.deliveringInvalidations)).toBe(true);
    expect(localB.get('session:x:1')).toBeUndefined();
    // Delivery works again: copies are kept and dropped as usual.
    localB.set('session:x:2', { live: true });
    expect(localB.get('session:x:2')).toEqual({ live: true });
    await localA.invalidate('session:x:2');
    expect(await until(() => localB.get('session:x:2') === undefined)).toBe(true);
  });

  it('publishes an invalidation again until it goes out, and reports the failure', async () => {
    const { a, localA, localB, failures } = await pair();
    localB.set('session:x:1', { live: true });
    localB.set('session:x:2', { live: true });
    a.client.disconnect();
    expect(await until(() => a.client.status === 'end')).toBe(true);
    await localA.invalidate('session:x:1');
    expect(failures).toHaveLength(1);
    expect(localB.get('session:x:1')).toEqual({ live: true });
    await a.client.connect();
    expect(await until(() => localB.get('session:x:1') === undefined, 3000)).toBe(true);
    // Only what was invalidated.
    expect(localB.get('session:x:2')).toEqual({ live: true });
  });
});

describe('local cache invalidation', () => {
  async function pair() {
    const shared = new MemoryCache();
    const a = new LocalCache(shared);
    const b = new LocalCache(shared);
    await Promise.all([a.start(), b.start()]);
    return [a, b] as const;
  }

  it('drops one key, or every key under a prefix ending with ":", here and on the other instance', async () => {
    const [a, b] = await pair();
    for (const local of [a, b]) for (const key of ['session:t1:1', 'session:t1:10', 'session:t2:1', 'tenant:acme', 'tenant:acme2']) local.set(key, key);
    await a.invalidate('session:t1:1');
    await a.invalidate('tenant:acme');
    for (const local of [a, b]) {
      expect(await until(() => local.get('session:t1:1') === undefined)).toBe(true);
      expect(local.get('tenant:acme')).toBeUndefined();
      // A key is not a prefix: its longer neighbours stay.
      expect(local.get('session:t1:10')).toBe('session:t1:10');
      expect(local.get('tenant:acme2')).toBe('tenant:acme2');
    }
    await b.invalidate('session:t1:');
    for (const local of [a, b]) {
      expect(await until(() => local.get('session:t1:10') === undefined)).toBe(true);
      expect(local.get('session:t2:1')).toBe('session:t2:1');
    }
  });

  it('keeps a value loaded across invalidations of other keys, not across one of its own key or prefix', async () => {
    const [a, b] = await pair();
    let loads = 0;
    /** A load that lets `during` run while it is in flight. */
    const loadAcross = async (key: string, during: () => Promise<void>) => {
      let finish!: () => void;
      const gate = new Promise<void>((r) => (finish = r));
      const loading = a.load(key, async () => {
        await gate;
        return ++loads;
      });
      await during();
      finish();
      return loading;
    };
    await loadAcross('access:t1:u1', async () => {
      await a.invalidate('access:t1:u2');
      await b.invalidate('session:t1:s1');
    });
    expect(loads).toBe(1);
    expect(await a.load('access:t1:u1', async () => ++loads)).toBe(1); // kept
    await a.invalidate('access:t1:u1');
    await loadAcross('access:t1:u1', () => a.invalidate('access:t1:u1'));
    expect(await a.load('access:t1:u1', async () => ++loads)).toBe(3); // the load across its own key was not kept
    await loadAcross('access:t1:u3', async () => {
      await b.invalidate('access:t1:');
      await until(() => false, 50); // the other instance's message arrives meanwhile
    });
    expect(await a.load('access:t1:u3', async () => ++loads)).toBe(5); // nor across its prefix, from the other instance
    // More invalidations during one load than are remembered: not kept (cannot tell).
    await loadAcross('access:t1:u4', async () => {
      for (let i = 0; i < 1100; i++) await a.invalidate(`session:t9:${i}`);
    });
    expect(await a.load('access:t1:u4', async () => ++loads)).toBe(7);
  });
});

describe('local cache: invalidations that could not be published', () => {
  /** A shared cache whose publishing fails while `down` (its delivery to subscribers does not). */
  class Unpublishing extends MemoryCache {
    down = false;
    override async publish(channel: string, message: string): Promise<void> {
      if (this.down) throw new Error('publish failed');
      return super.publish(channel, message);
    }
  }

  it('goes out one by one once publishing works again; past the limit, one that drops everything goes', async () => {
    const shared = new Unpublishing();
    const a = new LocalCache(shared);
    const b = new LocalCache(shared);
    await Promise.all([a.start(), b.start()]);
    for (const key of ['tenant:keep', 'session:t:1', 'session:t:2']) b.set(key, key);
    shared.down = true;
    await a.invalidate('session:t:1');
    expect(b.get('session:t:1')).toBe('session:t:1');
    shared.down = false;
    expect(await until(() => b.get('session:t:1') === undefined)).toBe(true);
    expect([b.get('tenant:keep'), b.get('session:t:2')]).toEqual(['tenant:keep', 'session:t:2']);

    shared.down = true;
    for (let i = 0; i < 1_001; i++) await a.invalidate(`session:t:${100 + i}`);
    shared.down = false;
    expect(await until(() => b.get('tenant:keep') === undefined)).toBe(true);
    expect(b.get('session:t:2')).toBeUndefined();
    a.close();
    b.close();
  });
});

describe('redis unavailable', () => {
  it('fails fast, reports it, and local copies are not trusted', async () => {
    // Nothing listens on port 9.
    const down = new RedisCache({ url: 'redis://127.0.0.1:9', prefix: 'down:' });
    opened.push(down);
    await down.connect();
    const started = Date.now();
    await expect(down.get('x')).rejects.toThrow();
    await expect(down.increment('x', 60)).rejects.toThrow();
    await expect(down.ping()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(down.deliveringInvalidations).toBe(false);

    const local = new LocalCache(down);
    await local.start();
    local.set('session:t:1', { live: true });
    expect(local.get('session:t:1')).toBeUndefined();
    let loads = 0;
    const load = () => local.load('k', async () => ++loads);
    await load();
    await load();
    expect(loads).toBe(2); // every read goes to the source while invalidations may be missed
  });
});

describe('memory cache bounds', () => {
  it('keeps at most maxEntries, dropping the oldest', async () => {
    const cache = new MemoryCache(2);
    await cache.set('a', '1', 60);
    await cache.set('b', '2', 60);
    await cache.set('c', '3', 60);
    expect(await cache.get('a')).toBeUndefined();
    expect(await cache.get('c')).toBe('3');
  });
});
