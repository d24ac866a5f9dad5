import pg from 'pg';
import { afterAll, beforeAll, it } from 'vitest';
import { hashPassword } from '../src/auth/passwords.js';
import { createTestApp, type TestApp } from '../test/support/app.js';
import { seedLargeTenant } from './lifecycle.js';

/**
 * Not part of the suite (`npm run bench:fork-profile`; docs/BENCHMARKS.md): where a fork of the
 * bench's lifecycle tenant (10,000 users, 100,000 records) spends its time. FORK_ROUNDS forks,
 * each timed and deleted again, with the statements that took longest.
 */
const ROUNDS = Number(process.env.FORK_ROUNDS ?? 3);
let t: TestApp;

const timings: { sql: string; ms: number }[] = [];
let timing = false;
const original = pg.Client.prototype.query;

beforeAll(async () => {
  t = await createTestApp();
  await seedLargeTenant(t.db.database.db, t.schemas, { slug: 'fk', users: 10_000, records: 100_000, passwordHash: await hashPassword('bench fork password') });
  (pg.Client.prototype as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    // The service submits pg.Query objects with a callback (src/db/database.ts): timed to it.
    const query = args[0] as { text?: string; callback?: (...a: unknown[]) => void } | undefined;
    if (timing && query && typeof query === 'object' && typeof query.callback === 'function') {
      const started = performance.now();
      const callback = query.callback;
      query.callback = (...a: unknown[]) => {
        timings.push({ sql: query.text ?? '', ms: performance.now() - started });
        callback(...a);
      };
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
}, 600_000);

afterAll(async () => {
  (pg.Client.prototype as { query: unknown }).query = original;
  await t?.close();
});

it('forks the lifecycle tenant', { timeout: 1_800_000 }, async () => {
  const seconds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    timings.length = 0;
    timing = true;
    const started = performance.now();
    const fork = await t.lifecycle.fork('fk', { slug: `fk_copy${round}` });
    seconds.push((performance.now() - started) / 1000);
    timing = false;
    const slowest = [...timings].sort((a, b) => b.ms - a.ms).slice(0, 8);
    console.log(`fork ${round}: ${seconds[round]!.toFixed(2)} s, ${timings.length} statements; slowest:\n${slowest.map((s) => `  ${s.ms.toFixed(0).padStart(6)} ms  ${s.sql.replace(/\s+/g, ' ').slice(0, 140)}`).join('\n')}`);
    await t.lifecycle.delete(fork.id, { backup: false });
  }
  console.log(`fork seconds: ${seconds.map((s) => s.toFixed(2)).join(', ')}`);
});
