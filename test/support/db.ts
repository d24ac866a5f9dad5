import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { DEFAULT_PREPARED_STATEMENTS } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { TEMPLATE_DATABASE, withDatabase } from './urls.js';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly database: Database;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh database cloned from the migrated template: each test file gets its own. */
export async function createTestDatabase(options: { poolMax?: number; preparedStatements?: number } = {}): Promise<TestDatabase> {
  const name = `test_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`));
  const url = withDatabase(inject('pgUrl'), name);
  // The service's default statement handling (named prepared statements), unless a test asks otherwise.
  const database = createDatabase({ url, max: options.poolMax ?? 5, connectionTimeoutMs: 10_000, preparedStatements: options.preparedStatements ?? DEFAULT_PREPARED_STATEMENTS });
  return {
    url,
    name,
    database,
    drop: async () => {
      await database.close();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
