import { describe, inject } from 'vitest';
import { RedisCache } from '../../src/cache/redis.js';

/** The suite's Redis: REDIS_URL, or a redis-server the global setup started; '' when there is none. */
export function redisUrl(): string {
  const url = inject('redisUrl');
  if (!url) throw new Error('these tests need Redis: install redis-server (Debian package) or set REDIS_URL');
  return url;
}

/**
 * A suite that needs a real Redis. Without one it is skipped (the global setup prints one line
 * saying what to install), unless REQUIRE_REDIS=1, which makes the whole run fail instead: CI
 * sets it, so there the Redis tests always run.
 */
export const describeWithRedis = describe.skipIf(inject('redisUrl') === '');

/** Redis caches of a file's service instances: each connected under a key prefix (the suite's Redis unless `url`), all closed together. */
export function redisCaches() {
  const caches: RedisCache[] = [];
  return {
    async connect(prefix: string, url = redisUrl()): Promise<RedisCache> {
      const cache = new RedisCache({ url, prefix });
      await cache.connect();
      caches.push(cache);
      return cache;
    },
    close: () => Promise.all(caches.map((c) => c.close())),
  };
}
