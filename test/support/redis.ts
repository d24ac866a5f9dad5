import { inject } from 'vitest';

/** The suite's Redis. Tests that need one fail (never skip) when the machine has none. */
export function redisUrl(): string {
  const url = inject('redisUrl');
  if (!url) throw new Error('these tests need Redis: install redis-server (Debian package) or set REDIS_URL');
  return url;
}
