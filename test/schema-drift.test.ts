import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { POLYMORPHIC_TYPES_0002 } from '../src/db/migrations/0002_extended_tables.js';
import { POLYMORPHIC_TYPES } from '../src/db/polymorphic.js';
import { tenantColumns } from '../src/db/columns.js';
import { SchemaManager } from '../src/tenancy/schema-manager.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await new SchemaManager(t.database.db).initializeTenantSchema(null, 'tenant_drift');
});
afterAll(async () => t?.drop());

it('the declared row types match a freshly migrated schema, column by column', async () => {
  const rows = await sql<{ table_name: string; column_name: string; udt_name: string; is_nullable: 'YES' | 'NO' }>`
    SELECT table_name, column_name, udt_name, is_nullable FROM information_schema.columns
    WHERE table_schema = 'tenant_drift' ORDER BY table_name, column_name`.execute(t.database.db);
  const actual: Record<string, Record<string, { type: string; nullable: boolean }>> = {};
  for (const r of rows.rows) (actual[r.table_name] ??= {})[r.column_name] = { type: r.udt_name, nullable: r.is_nullable === 'YES' };
  const declared = Object.fromEntries(
    Object.entries(tenantColumns).map(([table, cols]) => [
      table,
      Object.fromEntries(Object.entries(cols).sort(([a], [b]) => a.localeCompare(b)).map(([name, c]) => [name, { type: c.udtName, nullable: c.nullable }])),
    ]),
  );
  expect(actual).toEqual(declared);
});

it('the polymorphic allowlist of the code is the one the database enforces', () => {
  expect([...POLYMORPHIC_TYPES]).toEqual([...POLYMORPHIC_TYPES_0002]);
});
