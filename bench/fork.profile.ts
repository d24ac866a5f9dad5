import { afterAll, beforeAll, it } from 'vitest';
import { hashPassword } from '../src/auth/passwords.js';
import { createTestApp, type TestApp } from '../test/support/app.js';
import { seedLargeTenant } from './lifecycle.js';
import { oneLine, statementRecorder } from './statements.js';

/**
 * Not part of the suite (`npm run bench:fork-profile`; docs/BENCHMARKS.md): where a fork of the
 * bench's lifecycle tenant (10,000 users, 100,000 records) spends its time. FORK_ROUNDS forks,
 * each timed and deleted again, with the statements that took longest.
 */
const ROUNDS = Number(process.env.FORK_ROUNDS ?? 3);
let t: TestApp;
let recorder: ReturnType<typeof statementRecorder>;

beforeAll(async () => {
  t = await createTestApp();
  await seedLargeTenant(t.db.database.db, t.schemas, { slug: 'fk', users: 10_000, records: 100_000, passwordHash: await hashPassword('bench fork password') });
  recorder = statementRecorder();
}, 600_000);

afterAll(async () => {
  recorder?.restore();
  await t?.close();
});

it('forks the lifecycle tenant', { timeout: 1_800_000 }, async () => {
  const seconds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    const { result: fork, statements } = await recorder.during(() => t.lifecycle.fork('fk', { slug: `fk_copy${round}` }));
    seconds.push((performance.now() - started) / 1000);
    const slowest = [...statements].sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0)).slice(0, 8);
    console.log(`fork ${round}: ${seconds[round]!.toFixed(2)} s, ${statements.length} statements; slowest:\n${slowest.map((s) => `  ${(s.ms ?? 0).toFixed(0).padStart(6)} ms  ${oneLine(s.sql, 140)}`).join('\n')}`);
    await t.lifecycle.delete(fork.id, { backup: false });
  }
  console.log(`fork seconds: ${seconds.map((s) => s.toFixed(2)).join(', ')}`);
});
