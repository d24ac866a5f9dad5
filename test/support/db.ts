import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { DEFAULT_PREPARED_STATEMENTS } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { tenantRoleNamer } from '../../src/db/roles.js';
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

/**
 * A fresh database cloned from the migrated template: each test file gets its own. Its tenant
 * statements run as each tenant's own role, as the service's do by default (`tenantRoles: false`
 * for the runtime role's rights instead).
 */
export async function createTestDatabase(options: { poolMax?: number; preparedStatements?: number; tenantRoles?: boolean } = {}): Promise<TestDatabase> {
  const name = `test_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`));
  const url = withDatabase(inject('pgUrl'), name);
  // The service's default statement handling (named prepared statements), unless a test asks otherwise.
  const database = createDatabase({
    url,
    max: options.poolMax ?? 5,
    connectionTimeoutMs: 10_000,
    preparedStatements: options.preparedStatements ?? DEFAULT_PREPARED_STATEMENTS,
    ...(options.tenantRoles === false ? {} : { tenantRole: tenantRoleNamer(name) }),
  });
  return {
    url,
    name,
    database,
    drop: async () => {
      await database.close();
      await admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        // Roles are the cluster's: the tenant roles of this database go with it.
        const roles = await c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)`, [`${name}.`]);
        for (const { rolname } of roles.rows) await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(rolname)}`);
      });
    },
  };
}
