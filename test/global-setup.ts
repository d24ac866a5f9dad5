import { mkdtemp, rm } from 'node:fs/promises';
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
  }
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

  project.provide('pgUrl', url);
  return async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
    // As root the cluster may live outside dataDir (where the postgres user can reach it).
    if (server) await rm(path.dirname(server.dataDir), { recursive: true, force: true });
  };
}
