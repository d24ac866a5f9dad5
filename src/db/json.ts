import { sql, type RawBuilder } from 'kysely';

/**
 * Rows rendered as JSON by PostgreSQL, for hot list answers: building a page's JSON in the
 * database (C code) instead of parsing every column into JavaScript values and serializing them
 * again costs the service a fraction of the CPU. The text must match what the route's response
 * schema would have produced from the same row; the tests compare both paths.
 */

/** A timestamptz as `Date#toISOString` writes it (UTC, milliseconds, `Z`). */
export function isoTimestamp(ref: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`to_char(${ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/**
 * One row as compact JSON text (`{"key":value,...}`, keys in the order given: the response
 * schema's order), as row_to_json writes a row: the same text fast-json-stringify would write
 * for the same values. Aggregate with `jsonArray`.
 */
export function jsonRow(fields: ReadonlyArray<readonly [string, RawBuilder<unknown>]>): RawBuilder<string> {
  return sql<string>`(SELECT row_to_json(r)::text FROM (SELECT ${sql.join(fields.map(([key, value]) => sql`${value} AS ${sql.id(key)}`))}) AS r)`;
}

/** `[row,row,...]` from jsonRow texts, in the given order; `[]` for none. */
export function jsonArray(row: RawBuilder<string>, order: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`'[' || coalesce(string_agg(${row}, ',' ORDER BY ${order}), '') || ']'`;
}
