import { afterAll, beforeAll, it } from 'vitest';
import { mintCodes, registerClient, type BenchClient } from './oidc.js';
import { oneLine, statementRecorder } from './statements.js';
import { StatementCache } from '../src/db/statements.js';
import { createTestApp, type TestApp } from '../test/support/app.js';
import { freePort } from '../test/support/net.js';
import { login, PASSWORD, seedTenant, type SeededUser } from '../test/support/tenants.js';

/**
 * Not part of the suite (`npm run bench:oidc-profile` runs it; docs/BENCHMARKS.md): where a refresh at the
 * provider's token endpoint spends its time beside `POST auth/refresh`. The statements of one code
 * exchange and one refresh, sequential latencies, optionally a CPU profile of the refreshes
 * (PROFILE_OUT=file.cpuprofile); then both under load with the bench's load generator
 * (bench/load.ts, 8 connections, LOAD_ROUNDS turns of LOAD_SECONDS each), the service in this process.
 */
let t: TestApp;
let base: string;
let admin: SeededUser;
let client: BenchClient;

let recorder: ReturnType<typeof statementRecorder>;

beforeAll(async () => {
  StatementCache.verifying = false;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  t = await createTestApp({ publicUrl: base });
  admin = await seedTenant(t, 'oa');
  await t.app.listen({ port, host: '127.0.0.1' });
  client = await registerClient(t.db.database.db, 'oa', base);
  recorder = statementRecorder();
});

afterAll(async () => {
  recorder?.restore();
  await t?.close();
});

async function token(body: string): Promise<{ refresh_token?: string; status: number }> {
  const res = await fetch(`${base}/api/v1/tenants/oa/oidc/token`, { method: 'POST', headers: { authorization: client.authorization, 'content-type': 'application/x-www-form-urlencoded' }, body });
  const json = (await res.json()) as { refresh_token?: string };
  return { ...json, status: res.status };
}

it('profiles the token endpoint', { timeout: 300_000 }, async () => {
  const n = Number(process.env.PROFILE_N ?? 300);
  const codes = await mintCodes(base, 'oa', client, admin.email, PASSWORD, 1);
  const { result: exchanged, statements: exchange } = await recorder.during(() => token(new URLSearchParams({ grant_type: 'authorization_code', code: codes[0]!, redirect_uri: client.redirectUri }).toString()));
  console.log(`code exchange: status ${exchanged.status}, ${exchange.length} statements`);
  for (const s of exchange) console.log('  ', oneLine(s.sql, 300));
  let rt = exchanged.refresh_token!;
  const refreshBody = () => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt }).toString();
  // warm up
  for (let i = 0; i < 50; i++) {
    const r = await token(refreshBody());
    if (r.status !== 200) throw new Error(`status ${r.status}`);
    rt = r.refresh_token ?? rt;
  }
  const { result: one, statements: refresh } = await recorder.during(() => token(refreshBody()));
  rt = one.refresh_token ?? rt;
  console.log(`refresh: status ${one.status}, ${refresh.length} statements`);
  for (const s of refresh) console.log('  ', oneLine(s.sql, 300));

  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  if (process.env.PROFILE_OUT) {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  let started = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await token(refreshBody());
    rt = r.refresh_token ?? rt;
  }
  const oidcMs = (performance.now() - started) / n;
  const oidcCpu = process.cpuUsage(cpu0);
  if (process.env.PROFILE_OUT) {
    const { profile } = await session.post('Profiler.stop');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.PROFILE_OUT, JSON.stringify(profile));
  }

  let own = (await login(t.app, 'oa', admin.email)).refresh_token;
  const refreshOwn = async () => {
    const res = await fetch(`${base}/api/v1/tenants/oa/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: own }) });
    own = ((await res.json()) as { refresh_token: string }).refresh_token;
  };
  for (let i = 0; i < 50; i++) await refreshOwn();
  const cpu1 = process.cpuUsage();
  started = performance.now();
  for (let i = 0; i < n; i++) await refreshOwn();
  const ownMs = (performance.now() - started) / n;
  const ownCpu = process.cpuUsage(cpu1);
  const us = (c: NodeJS.CpuUsage) => ((c.user + c.system) / n).toFixed(0);
  console.log(`sequential: oidc refresh ${oidcMs.toFixed(2)} ms (${us(oidcCpu)} us CPU of this process), auth/refresh ${ownMs.toFixed(2)} ms (${us(ownCpu)} us CPU); ratio ${(ownMs / oidcMs).toFixed(2)}`);
});

it('compares rates under load (bench/load.ts, 8 connections)', { timeout: 600_000 }, async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = promisify(execFile);
  const seconds = Number(process.env.LOAD_SECONDS ?? 3);
  const rounds = Number(process.env.LOAD_ROUNDS ?? 3);
  const load = async (spec: object) => {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify({ seconds, warmSeconds: 1, connections: 8, method: 'POST', ...spec })], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (stderr) console.log(stderr);
    return JSON.parse(stdout.trim().split('\n').pop()!) as { rps: number; errors: number; p50_ms: number };
  };
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const tokens = await Promise.all(Array.from({ length: 16 }, () => login(t.app, 'oa', admin.email).then((x) => x.refresh_token)));
    const own = await load({ url: `${base}/api/v1/tenants/oa/auth/refresh`, headers: {}, kind: 'refresh', refreshTokens: tokens });
    const codes = await mintCodes(base, 'oa', client, admin.email, PASSWORD, 8);
    const oidc = await load({ url: `${base}/api/v1/tenants/oa/oidc/token`, headers: { authorization: client.authorization, 'content-type': 'application/x-www-form-urlencoded' }, kind: 'oidc-token', oidcCodes: codes, redirectUri: client.redirectUri });
    ratios.push(oidc.rps / own.rps);
    console.log(`round ${round}: refresh ${own.rps} rps (${own.errors} errors), oidc_token ${oidc.rps} rps (${oidc.errors} errors, p50 ${oidc.p50_ms} ms), ratio ${(oidc.rps / own.rps).toFixed(3)}`);
  }
  console.log(`ratios ${ratios.map((r) => r.toFixed(3)).join(' ')}`);
});
