import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR, writeAudit } from '../src/audit/audit.js';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { TEST_SECRET } from './support/app.js';
import { runTs } from './support/process.js';
import { caller } from './support/records.js';
import { login, seedUser } from './support/tenants.js';

/* SPEC §14: audit rows are hash-chained per tenant; a row changed, removed or added behind the service's back is found. */

const t = useTenants(['ca', 'cb']);
const call = (token: string, method: 'GET' | 'POST', url: string, payload?: unknown) => caller(t.app)(token, method, url, payload);
const db = () => t.db.database.db;
const verify = async (slug: 'ca' | 'cb') => {
  const res = await call(t.tokens[slug], 'GET', `${slug}/audit-logs/verify`);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { valid: boolean; checked: number; first_invalid_id: string | null; first_invalid_seq: number | null; reason: string | null; head: { seq: number; hash: string } };
};
const count = async (slug: string) => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id(`tenant_${slug}`, 'audit_logs')}`.execute(db())).rows[0]!.n);

/** Runs SQL as a superuser would, with triggers off: the audit trail's immutability does not stop it. */
async function behindTheBack(statement: ReturnType<typeof sql>) {
  await db()
    .transaction()
    .execute(async (trx) => {
      await sql`SET LOCAL session_replication_role = replica`.execute(trx);
      await statement.execute(trx);
    });
}

const cli = (...args: string[]) => runTs('src/cli.ts', args, { DATABASE_URL: t.db.url, JWT_SECRET_KEY: TEST_SECRET, LOG_LEVEL: 'warn' });

describe('audit hash chain', { timeout: 120_000 }, () => {
  it('chains every write path of both tenants, in commit order, also when written concurrently', async () => {
    const user = await seedUser(t, 'cb', { email: 'member@cb.example', roles: ['viewer'] });
    const tokens = await login(t.app, 'cb', user.email);
    expect((await call(t.tokens.cb, 'POST', 'cb/users', { email: 'new@cb.example' })).statusCode).toBe(201);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/cb/auth/login', payload: { email: user.email, password: 'wrong password' } })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/cb/auth/refresh', payload: { refresh_token: tokens.refresh_token } })).statusCode).toBe(200);
    // A refresh that does not rotate (a replayed token) writes its own row: the chain stays whole.
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/cb/auth/refresh', payload: { refresh_token: tokens.refresh_token } });
    // A write rolled back takes its step of the chain with it.
    await expect(
      db()
        .transaction()
        .execute(async (trx) => {
          await writeAudit(tenantDb(trx, 'tenant_cb'), SYSTEM_ACTOR, { action: 'test.rolled_back' });
          throw new Error('roll back');
        }),
    ).rejects.toThrow('roll back');

    const actions = (await sql<{ action: string }>`SELECT action FROM tenant_cb.audit_logs ORDER BY seq`.execute(db())).rows.map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['users.create', 'auth.login', 'auth.login_failed', 'auth.refresh', 'auth.refresh_reuse']));
    expect(actions).not.toContain('test.rolled_back');
    const cb = await verify('cb');
    expect(cb).toMatchObject({ valid: true, checked: await count('cb'), first_invalid_id: null, reason: null });
    expect(cb.head.seq).toBe(cb.checked);
    expect(cb.head.hash).toMatch(/^[0-9a-f]{64}$/);

    // Writers on separate connections at once: each row takes the next seq, none is lost.
    const before = await count('ca');
    let next = 0;
    const worker = async () => {
      while (next < 400) {
        next++;
        await db()
          .transaction()
          .execute((trx) => writeAudit(tenantDb(trx, 'tenant_ca'), SYSTEM_ACTOR, { action: 'test.concurrent', metadata: { n: next } }));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const seqs = (await sql<{ seq: string }>`SELECT seq FROM tenant_ca.audit_logs ORDER BY seq`.execute(db())).rows.map((r) => Number(r.seq));
    expect(seqs).toEqual(Array.from({ length: before + 400 }, (_, n) => n + 1));
    expect(await verify('ca')).toMatchObject({ valid: true, checked: before + 400 });
  });

  it('verifies an untouched chain of 10,000 rows, and the audit listing shows each row with its seq and hash', async () => {
    const ca = tenantDb(db(), 'tenant_ca');
    while ((await count('ca')) < 10_000) {
      await db()
        .transaction()
        .execute(async (trx) => {
          for (let i = 0; i < 500; i++) await writeAudit(tenantDb(trx, 'tenant_ca'), SYSTEM_ACTOR, { action: 'test.bulk', entityType: 'notes', entityId: String(i), after: { i, text: 'é ✓ "quoted" \\ back' } });
        });
    }
    const report = await verify('ca');
    expect(report).toMatchObject({ valid: true, checked: await count('ca') });
    expect(report.checked).toBeGreaterThanOrEqual(10_000);
    const page = (await call(t.tokens.ca, 'GET', 'ca/audit-logs?page_size=1')).json();
    const last = await ca.selectFrom('audit_logs').select(['seq', 'hash']).orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(page.items[0]).toMatchObject({ seq: Number(last.seq), hash: last.hash });
  });

  it('finds a row changed, removed or added behind the service, and the other tenant stays valid', async () => {
    const seqOf = async (n: number) => (await sql<{ id: string }>`SELECT id FROM tenant_cb.audit_logs WHERE seq = ${n}`.execute(db())).rows[0]!.id;
    const total = await count('cb');
    expect(total).toBeGreaterThan(5);

    // Changed: one value in row 3.
    const original = (await sql<{ metadata: string }>`SELECT metadata::text AS metadata FROM tenant_cb.audit_logs WHERE seq = 3`.execute(db())).rows[0]!.metadata;
    await behindTheBack(sql`UPDATE tenant_cb.audit_logs SET metadata = '{"changed": true}' WHERE seq = 3`);
    expect(await verify('cb')).toMatchObject({ valid: false, checked: 2, first_invalid_seq: 3, first_invalid_id: await seqOf(3) });
    expect((await verify('ca')).valid).toBe(true);
    const broken = await cli('audit', 'verify', 'cb');
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/cb: the audit chain is BROKEN after 2 intact rows, at row .+ \(seq 3\)/);
    await behindTheBack(sql`UPDATE tenant_cb.audit_logs SET metadata = ${original}::jsonb WHERE seq = 3`);
    expect((await verify('cb')).valid).toBe(true);

    // Removed: row 4 (kept aside, then put back).
    await sql`CREATE TABLE public.kept AS SELECT * FROM tenant_cb.audit_logs WHERE seq = 4`.execute(db());
    const fifth = await seqOf(5);
    await behindTheBack(sql`DELETE FROM tenant_cb.audit_logs WHERE seq = 4`);
    const removed = await verify('cb');
    expect(removed).toMatchObject({ valid: false, checked: 3, first_invalid_seq: 5, first_invalid_id: fifth });
    expect(removed.reason).toMatch(/removed/);
    await sql`INSERT INTO tenant_cb.audit_logs SELECT * FROM public.kept`.execute(db());
    await sql`DROP TABLE public.kept`.execute(db());
    expect((await verify('cb')).valid).toBe(true);

    // Removed from the end: the head remembers where the chain ended.
    await sql`CREATE TABLE public.kept AS SELECT * FROM tenant_cb.audit_logs WHERE seq = ${total}`.execute(db());
    await behindTheBack(sql`DELETE FROM tenant_cb.audit_logs WHERE seq = ${total}`);
    const cut = await verify('cb');
    expect(cut).toMatchObject({ valid: false, checked: total - 1, first_invalid_id: null });
    expect(cut.reason).toMatch(/removed from the end/);
    await sql`INSERT INTO tenant_cb.audit_logs SELECT * FROM public.kept`.execute(db());
    await sql`DROP TABLE public.kept`.execute(db());
    expect((await verify('cb')).valid).toBe(true);

    // Added: a plain INSERT with a made-up hash, then one whose hash links correctly.
    for (const hash of [sql`repeat('f', 64)`, sql`encode(sha256(convert_to((SELECT hash FROM tenant_cb.audit_chain) || 'x', 'UTF8')), 'hex')`]) {
      const added = (
        await sql<{ id: string }>`INSERT INTO tenant_cb.audit_logs (actor_type, action, seq, hash) VALUES ('system', 'users.update', ${total + 1}, ${hash}) RETURNING id`.execute(db())
      ).rows[0]!.id;
      expect(await verify('cb')).toMatchObject({ valid: false, checked: total, first_invalid_id: added, first_invalid_seq: total + 1 });
      await behindTheBack(sql`DELETE FROM tenant_cb.audit_logs WHERE id = ${added}`);
    }
    const intact = await cli('audit', 'verify', 'cb', '--json');
    expect(intact.code).toBe(0);
    expect(JSON.parse(intact.stdout)).toMatchObject({ valid: true, checked: total });
    expect((await verify('ca')).valid).toBe(true);
  });

  it('lets only holders of audit_logs.read walk the chain', async () => {
    const viewer = await seedUser(t, 'ca', { email: 'viewer@ca.example', roles: ['viewer'] });
    const token = (await login(t.app, 'ca', viewer.email)).access_token;
    expect((await call(token, 'GET', 'ca/audit-logs/verify')).statusCode).toBe(403);
    // A token of one tenant walks no other tenant's chain.
    expect((await call(t.tokens.ca, 'GET', 'cb/audit-logs/verify')).statusCode).toBe(403);
  });
});
