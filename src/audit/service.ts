import { sql, type Kysely } from 'kysely';
import { chainStep, GENESIS, storedCanonical } from '../db/audit-chain.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError, text } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';

export interface AuditQuery {
  page: number;
  page_size: number;
  actor_user_id?: string;
  entity_type?: string;
  entity_id?: string;
  action?: string;
  from?: string;
  to?: string;
}

/** What a walk of the audit hash chain found. */
export interface ChainReport {
  readonly valid: boolean;
  /** Rows found intact, in chain order, before the first broken one (every row when valid). */
  readonly checked: number;
  readonly first_invalid_id: string | null;
  readonly first_invalid_seq: number | null;
  /** Why the chain is broken there; null when valid. */
  readonly reason: string | null;
  /** The chain's head as stored: keep it elsewhere to prove later that nothing was cut from the end. */
  readonly head: { readonly seq: number; readonly hash: string } | null;
}

/** Rows read per round trip while walking the chain. */
const VERIFY_BATCH = 10_000;
const BEFORE_FIRST = '-9223372036854775808';

/** The audit trail, read only: rows are written with their changes (audit.ts) and never altered. */
export class AuditService {
  constructor(private readonly db: Kysely<PlatformDatabase>) {}

  /** A page of the trail, newest first, filtered by actor, entity, action and time range. */
  async list(tenant: TenantContext, q: AuditQuery) {
    if (q.from && q.to && new Date(q.from) > new Date(q.to)) throw DomainError.invalid('from', text('reason.from_after_to'));
    let base = tenantDb(this.db, tenant.schema).selectFrom('audit_logs');
    if (q.actor_user_id) base = base.where('actor_user_id', '=', q.actor_user_id);
    if (q.entity_type) base = base.where('entity_type', '=', q.entity_type);
    if (q.entity_id) base = base.where('entity_id', '=', q.entity_id);
    if (q.action) base = base.where('action', '=', q.action);
    if (q.from) base = base.where('created_at', '>=', new Date(q.from));
    if (q.to) base = base.where('created_at', '<', new Date(q.to));
    const [items, total] = await Promise.all([
      base.selectAll().orderBy('created_at', 'desc').orderBy('seq', 'desc').limit(q.page_size).offset((q.page - 1) * q.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: items.map(({ updated_at: _u, seq, ...e }) => ({ ...e, seq: Number(seq) })), total: Number(total.n), page: q.page, page_size: q.page_size };
  }

  /**
   * Walks the tenant's audit hash chain in order, in batches, in one read-only snapshot, and
   * reports the first row that breaks it: a row changed (its hash no longer matches), removed
   * (a gap in seq, or the head past the last row) or added outside the service (its hash does
   * not link, or it lies past the head).
   */
  async verify(tenant: TenantContext, onProgress?: (checked: number) => void): Promise<ChainReport> {
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .setAccessMode('read only')
      .execute(async (trx) => {
        const db = tenantDb(trx, tenant.schema);
        const head = (await db.selectFrom('audit_chain').select(['seq', 'hash']).executeTakeFirst()) ?? null;
        const table = sql.id(tenant.schema, 'audit_logs');
        let previous = GENESIS;
        let after = BEFORE_FIRST;
        let checked = 0;
        const stored = head && { seq: Number(head.seq), hash: head.hash };
        const broken = (row: { id: string; seq: string } | null, reason: string): ChainReport => ({ valid: false, checked, first_invalid_id: row?.id ?? null, first_invalid_seq: row ? Number(row.seq) : null, reason, head: stored });
        for (;;) {
          const { rows } = await sql<{ id: string; seq: string; hash: string; linked: boolean }>`
            SELECT l.id, l.seq, l.hash, l.hash = ${chainStep(sql`coalesce(lag(l.hash) OVER (ORDER BY l.seq), ${previous}::text)`, storedCanonical('l'))} AS linked
            FROM ${table} AS l WHERE l.seq > ${after} ORDER BY l.seq LIMIT ${VERIFY_BATCH}`.execute(trx);
          for (const row of rows) {
            const expected = String(checked + 1);
            if (row.seq !== expected) return broken(row, Number(row.seq) > Number(expected) ? `seq ${expected} is missing: a row was removed before this one` : `seq ${row.seq} is out of order`);
            if (!head || BigInt(row.seq) > BigInt(head.seq)) return broken(row, 'the row lies past the chain head: it was not written by the service');
            if (!row.linked) return broken(row, "the row's hash does not match its content and the previous row's hash: it was changed, or written outside the service");
            checked++;
            previous = row.hash;
            after = row.seq;
          }
          onProgress?.(checked);
          if (rows.length < VERIFY_BATCH) break;
        }
        if (!head) return broken(null, 'the chain head (audit_chain) is missing');
        if (head.seq !== String(checked) || head.hash !== previous) {
          return broken(null, `the chain head is at seq ${head.seq} but the last row is seq ${checked}: rows were removed from the end, or the head was changed`);
        }
        return { valid: true, checked, first_invalid_id: null, first_invalid_seq: null, reason: null, head: stored };
      });
  }
}
