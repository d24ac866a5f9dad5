import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { migratePlatform } from '../src/db/platform.js';
import { TEMPLATE_DATABASE, withDatabase } from './support/urls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the test PostgreSQL server (database `postgres`). */
    pgUrl: string;
    /** A real Redis: REDIS_URL, or a redis-server started from PATH; '' when neither exists. */
    redisUrl: string;
  }
}

/** Starts `redis-server` on a free port, in memory only; resolves once it accepts connections. */
async function startRedis(): Promise<{ url: string; stop: () => void } | undefined> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const port = await new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/**
 * One real PostgreSQL for the whole run (the embedded one, or TEST_DATABASE_URL), with a
 * template database migrated once; each test file clones it (CREATE DATABASE ... TEMPLATE).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'system-service-test-'));
  const external = process.env.TEST_DATABASE_URL;
  const server = external ? undefined : await startEmbeddedPostgres({ dataDir, unsafeFast: true });
  const url = external ?? server!.url;

  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE}`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  await admin.end();
  const template = createDatabase({ url: withDatabase(url, TEMPLATE_DATABASE), max: 2, connectionTimeoutMs: 10_000 });
  await migratePlatform(template.db);
  await template.close();

  const redis = process.env.REDIS_URL ? undefined : await startRedis();
  if (!process.env.REDIS_URL && !redis) {
    if (process.env.REQUIRE_REDIS === '1') throw new Error('REQUIRE_REDIS=1, but there is no redis-server on PATH and no REDIS_URL');
    console.warn('Redis-backed tests are skipped: install redis-server (Debian package) or set REDIS_URL to run them.');
  }
  project.provide('pgUrl', url);
  project.provide('redisUrl', process.env.REDIS_URL ?? redis?.url ?? '');
  return async () => {
    redis?.stop();
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
    // As root the cluster may live outside dataDir (where the postgres user can reach it).
    if (server) await rm(path.dirname(server.dataDir), { recursive: true, force: true });
  };
}
