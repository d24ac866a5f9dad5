import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, tenantDb, type Database } from '../src/db/database.js';
import { row, StatementCache } from '../src/db/statements.js';
import { useTenants } from './support/fixture.js';
import { bearer, login } from './support/tenants.js';

const t = useTenants(['psa', 'psb'], { login: false });
const opened: Database[] = [];
// Before the app closes (after hooks run in reverse order).
afterAll(async () => {
  for (const d of opened) await d.close();
});

/** A pool of one connection, so every query below meets the same server session. */
function single(preparedStatements: number): Database {
  const d = createDatabase({ url: t.db.url, max: 1, connectionTimeoutMs: 10_000, preparedStatements });
  opened.push(d);
  return d;
}

const held = async (d: Database) =>
  (await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements ORDER BY prepare_time`.execute(d.db)).rows.map((r) => r.statement);

/** One user's email through a cached statement of `shape` (the shape's SQL differs per column list). */
function reader(cache: StatementCache, d: Database, schema: string) {
  return async (id: string, extra: 'first_name' | 'last_name' | 'status') => {
    const { rows } = await cache.run(tenantDb(d.db, schema) as unknown as Kysely<never>, `read:${schema}:${extra}`, { id }, (v) =>
      tenantDb(d.db, schema).selectFrom('users').select(['email', extra]).where('id', '=', v.id),
    );
    return (rows[0] as { email: string } | undefined)?.email;
  };
}

describe('tenant handles', () => {
  it('are made once per schema and each reads its own tenant only, inside and outside transactions', async () => {
    const d = single(0);
    expect(tenantDb(d.db, 'tenant_psa')).toBe(tenantDb(d.db, 'tenant_psa'));
    expect(tenantDb(d.db, 'tenant_psa')).not.toBe(tenantDb(d.db, 'tenant_psb'));
    const email = (db: Kysely<never>, schema: string, id: string) =>
      tenantDb(db as never, schema).selectFrom('users').select('email').where('id', '=', id).executeTakeFirst();
    for (let i = 0; i < 2; i++) {
      expect((await email(d.db as never, 'tenant_psa', t.admins.psa.id))?.email).toBe(t.admins.psa.email);
      expect(await email(d.db as never, 'tenant_psa', t.admins.psb.id)).toBeUndefined();
      expect((await email(d.db as never, 'tenant_psb', t.admins.psb.id))?.email).toBe(t.admins.psb.email);
      await d.db.transaction().execute(async (trx) => {
        expect(tenantDb(trx as never, 'tenant_psb')).not.toBe(tenantDb(d.db, 'tenant_psb'));
        expect((await email(trx as never, 'tenant_psb', t.admins.psb.id))?.email).toBe(t.admins.psb.email);
        expect(await email(trx as never, 'tenant_psb', t.admins.psa.id)).toBeUndefined();
      });
    }
  });
});

describe('named prepared statements', () => {
  it('runs cached statements as named statements, one per text and tenant, each answering for its own tenant', async () => {
    const d = single(10);
    const cache = new StatementCache();
    const readAlpha = reader(cache, d, 'tenant_psa');
    const readBeta = reader(cache, d, 'tenant_psb');
    for (let i = 0; i < 3; i++) {
      expect(await readAlpha(t.admins.psa.id, 'status')).toBe(t.admins.psa.email);
      expect(await readBeta(t.admins.psb.id, 'status')).toBe(t.admins.psb.email);
      // Each tenant's statement names its own schema: the other tenant's id finds nothing.
      expect(await readAlpha(t.admins.psb.id, 'status')).toBeUndefined();
      expect(await readBeta(t.admins.psa.id, 'status')).toBeUndefined();
    }
    const statements = await held(d);
    expect(statements).toHaveLength(2);
    expect(statements.filter((s) => s.includes('"tenant_psa"'))).toHaveLength(1);
    expect(statements.filter((s) => s.includes('"tenant_psb"'))).toHaveLength(1);
  });

  it('takes a row as one value: each defined property a parameter, another set of properties another statement', async () => {
    const d = single(10);
    const cache = new StatementCache();
    const db = tenantDb(d.db, 'tenant_psa');
    let seq = 0;
    const insert = (entry: { action: string; entity_type?: string | null; metadata: string }) =>
      cache.run(db, 'rows:tenant_psa', { entry: row({ ...entry, seq: String(1_000_000 + ++seq), hash: 'h' }), actor: 'system' }, (v) => db.insertInto('audit_logs').values({ ...v.entry, actor_type: v.actor }).returning(['action', 'entity_type', 'metadata', 'actor_type']));
    const inserted = [
      await insert({ action: 'rows.one', entity_type: 'users', metadata: '{"n":1}' }),
      await insert({ action: 'rows.two', entity_type: null, metadata: '{"n":2}' }),
      await insert({ action: 'rows.three', metadata: '{"n":3}' }),
      await insert({ action: 'rows.four', entity_type: undefined, metadata: '{"n":4}' }),
    ].map((r) => r.rows[0]);
    expect(inserted).toEqual([
      { action: 'rows.one', entity_type: 'users', metadata: { n: 1 }, actor_type: 'system' },
      { action: 'rows.two', entity_type: null, metadata: { n: 2 }, actor_type: 'system' },
      { action: 'rows.three', entity_type: null, metadata: { n: 3 }, actor_type: 'system' },
      { action: 'rows.four', entity_type: null, metadata: { n: 4 }, actor_type: 'system' },
    ]);
    expect((await held(d)).filter((s) => s.includes('audit_logs'))).toHaveLength(2);
  });

  it('keeps at most the configured number per connection, closing the least recently used', async () => {
    const d = single(2);
    const read = reader(new StatementCache(), d, 'tenant_psa');
    expect(await read(t.admins.psa.id, 'first_name')).toBe(t.admins.psa.email);
    expect(await read(t.admins.psa.id, 'last_name')).toBe(t.admins.psa.email);
    expect(await read(t.admins.psa.id, 'first_name')).toBe(t.admins.psa.email); // last_name is now the least recent
    expect(await read(t.admins.psa.id, 'status')).toBe(t.admins.psa.email);
    const statements = await held(d);
    expect(statements).toHaveLength(2);
    expect(statements.some((s) => s.includes('"first_name"'))).toBe(true);
    expect(statements.some((s) => s.includes('"status"'))).toBe(true);
    expect(statements.some((s) => s.includes('"last_name"'))).toBe(false);
    // The closed one is prepared again when it comes back.
    expect(await read(t.admins.psa.id, 'last_name')).toBe(t.admins.psa.email);
    expect(await held(d)).toHaveLength(2);
  });

  it('prepares nothing when the setting is 0', async () => {
    const d = single(0);
    const read = reader(new StatementCache(), d, 'tenant_psb');
    for (let i = 0; i < 3; i++) expect(await read(t.admins.psb.id, 'first_name')).toBe(t.admins.psb.email);
    expect(await held(d)).toEqual([]);
  });

  it('survives a column type change under a prepared statement (the statement runs again unnamed, the connection is replaced)', async () => {
    const token = (await login(t.app, 'psa', t.admins.psa.email)).access_token;
    const get = () => t.app.inject({ method: 'GET', url: `/api/v1/tenants/psa/users/${t.admins.psa.id}`, headers: bearer(token) });
    for (let i = 0; i < 8; i++) expect((await get()).statusCode).toBe(200);
    await sql`ALTER TABLE tenant_psa.users ALTER COLUMN phone TYPE varchar(80)`.execute(t.db.database.db);
    for (let i = 0; i < 8; i++) {
      const res = await get();
      expect(res.statusCode).toBe(200);
      expect(res.json().email).toBe(t.admins.psa.email);
    }
    // The other tenant is untouched.
    const tokenB = (await login(t.app, 'psb', t.admins.psb.email)).access_token;
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/tenants/psb/users/${t.admins.psa.id}`, headers: bearer(tokenB) })).statusCode).toBe(404);
  });
});

describe('statement shapes', () => {
  const read = (cache: StatementCache, schema: string, shape: string, id: string) =>
    cache.run(tenantDb(t.db.database.db, schema), shape, { id }, (v) => tenantDb(t.db.database.db, schema).selectFrom('users').select('email').where('id', '=', v.id));

  it('never lets two tenants share a cached statement: a shape without the schema is caught', async () => {
    const cache = new StatementCache();
    expect((await read(cache, 'tenant_psa', 'by-id:tenant_psa', t.admins.psa.id)).rows).toEqual([{ email: t.admins.psa.email }]);
    // The other tenant's id read through its own shape finds its user; through alpha's, nothing.
    expect((await read(cache, 'tenant_psb', 'by-id:tenant_psb', t.admins.psb.id)).rows).toEqual([{ email: t.admins.psb.email }]);
    expect((await read(cache, 'tenant_psa', 'by-id:tenant_psa', t.admins.psb.id)).rows).toEqual([]);
    // A shape that leaves the schema out would run alpha's SQL for beta: the suite's check refuses it.
    await read(cache, 'tenant_psa', 'by-id', t.admins.psa.id);
    await expect(read(cache, 'tenant_psb', 'by-id', t.admins.psb.id)).rejects.toThrow(/names two statements/);
  });
});
