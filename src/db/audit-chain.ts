import { isExpression, sql, type Expression, type QueryCreator, type RawBuilder } from 'kysely';
import type { TenantDatabase } from './types.js';

/**
 * The audit hash chain. Each audit row holds `seq` (1, 2, 3, ... per tenant) and `hash`:
 *
 *   hash = hex(SHA-256(UTF-8(previous row's hash || canonical(row))))
 *
 * where the first row's previous hash is GENESIS and canonical(row) is the text of the JSON array
 * [seq, id, created_at in microseconds since 1970, actor_user_id, actor_type, session_id,
 * ip_address, user_agent, request_id, action, entity_type, entity_id, before, after, metadata]
 * as PostgreSQL prints jsonb. The one-row table `audit_chain` holds the head (the last seq and
 * hash); a write advances it in the same statement and transaction as the row, so rows of one
 * tenant are chained in commit order, while other tenants' writes never wait.
 */
export const GENESIS = '0'.repeat(64);

/** The columns the hash covers, in canonical order, with their types. */
export const CHAINED_COLUMNS = [
  ['id', 'uuid'],
  ['created_at', 'timestamptz'],
  ['actor_user_id', 'uuid'],
  ['actor_type', 'text'],
  ['session_id', 'uuid'],
  ['ip_address', 'inet'],
  ['user_agent', 'text'],
  ['request_id', 'text'],
  ['action', 'text'],
  ['entity_type', 'text'],
  ['entity_id', 'text'],
  ['before', 'jsonb'],
  ['after', 'jsonb'],
  ['metadata', 'jsonb'],
] as const;

export type ChainedColumn = (typeof CHAINED_COLUMNS)[number][0];

/** An audit row to append: a value (a parameter) or an SQL expression for every chained column. */
export type ChainedValues = { readonly [C in ChainedColumn]: unknown };

type SqlValue = Expression<unknown> | RawBuilder<unknown>;

/** `value` as its column's type: the same text whether it is a parameter or the stored column. */
function typed(value: unknown, type: string): RawBuilder<unknown> {
  const expression = isExpression(value) ? value : sql`${value}`;
  return sql`CAST(${expression} AS ${sql.raw(type)})`;
}

/** canonical(row) as SQL, from the row's sequence number and a value for each chained column. */
export function canonical(seq: SqlValue, value: (column: ChainedColumn) => unknown): RawBuilder<string> {
  const parts = CHAINED_COLUMNS.map(([column, type]) => {
    const v = typed(value(column), type);
    // Microseconds, not text: a timestamp's text depends on the session's TimeZone.
    return column === 'created_at' ? sql`(extract(epoch FROM ${v}) * 1000000)::bigint` : v;
  });
  return sql<string>`jsonb_build_array(${seq}, ${sql.join(parts)})::text`;
}

/** The hash of a row, from the previous hash and the row's canonical text. */
export function chainStep(previous: SqlValue, text: SqlValue): RawBuilder<string> {
  return sql<string>`encode(sha256(convert_to(${previous} || ${text}, 'UTF8')), 'hex')`;
}

/** The canonical text of a stored row (`alias.column`), for verification. */
export function storedCanonical(alias: string): RawBuilder<string> {
  return canonical(sql.ref(`${alias}.seq`), (column) => sql.ref(`${alias}.${column}`));
}

type ChainTables = { chain: { seq: string; hash: string }; audit: Record<string, never> };

/**
 * Adds to a statement the CTEs `chain` (advances the head: takes its row lock until commit) and
 * `audit` (inserts the row with its seq and hash). With `when`, both happen only if it holds.
 * Every audit write goes through here: a row written any other way breaks the chain.
 */
export function withAuditRow<DB extends TenantDatabase>(q: QueryCreator<DB>, values: ChainedValues, when?: SqlValue): QueryCreator<DB & ChainTables> {
  const value = (column: ChainedColumn) => values[column];
  const builder = q as unknown as QueryCreator<TenantDatabase & ChainTables>;
  return builder
    .with('chain', (w) =>
      w
        .updateTable('audit_chain')
        .set({ seq: sql`seq + 1`, hash: chainStep(sql.ref('hash'), canonical(sql`seq + 1`, value)) })
        .$if(when !== undefined, (u) => u.where(when as Expression<boolean>))
        .returning(['seq', 'hash']),
    )
    .with('audit', (w) =>
      w
        .insertInto('audit_logs')
        .columns([...CHAINED_COLUMNS.map(([column]) => column), 'seq', 'hash'])
        .expression((eb) =>
          eb.selectFrom('chain').select([...CHAINED_COLUMNS.map(([column, type]) => typed(value(column), type).as(column)), 'chain.seq', 'chain.hash']),
        ),
    ) as unknown as QueryCreator<DB & ChainTables>;
}

/** `SELECT seq, hash` of the last row of a schema's audit trail (0 and GENESIS when empty). */
export function lastLink(schema: string): RawBuilder<{ seq: string; hash: string }> {
  const table = sql.id(schema, 'audit_logs');
  return sql`SELECT coalesce(max(seq), 0) AS seq, coalesce((SELECT hash FROM ${table} ORDER BY seq DESC LIMIT 1), ${sql.lit(GENESIS)}) AS hash FROM ${table}`;
}

/** Points the head at the last row: for a schema whose audit rows were loaded (import, fork, restore). */
export function resetChainHead(schema: string): RawBuilder<unknown> {
  return sql`UPDATE ${sql.id(schema, 'audit_chain')} SET (seq, hash) = (${lastLink(schema)})`;
}
