import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import { prepared, runDirect } from './database.js';

/**
 * Builds a statement once per shape and reuses its SQL: building and schema-qualifying a query
 * with Kysely costs more CPU than PostgreSQL spends running a simple one. The builder is called
 * with placeholder values (so it must pass values through untouched: compute patterns, dates and
 * offsets before); later calls substitute the real values into the compiled parameters. A value
 * wrapped in `row()` (a row to insert) gets a placeholder per property; its undefined properties
 * are left out, as Kysely leaves them out (the column's default applies). `shape` must name
 * everything that changes the SQL text (schema, which filters, sort); which values and row
 * properties are present is part of the shape already.
 */
export class StatementCache {
  /**
   * When on (the test suite turns it on), every reuse builds the statement again and throws if
   * its SQL differs from the one cached under that shape: a call site whose shape leaves out the
   * schema, a filter or the sort is caught by the first test that runs it two ways.
   */
  static verifying = false;
  private readonly compiled = new Map<string, Compiled>();

  constructor(private readonly maxEntries = 5_000) {}

  async run<R, V extends Record<string, unknown>, DB>(db: Kysely<DB>, shape: string, values: V, build: (values: V) => Compilable<R>): Promise<QueryResult<R>> {
    // The values in placeholder order, and their paths (part of the shape).
    const leaves: unknown[] = [];
    let key = `${shape}|`;
    for (const name in values) {
      if (!Object.hasOwn(values, name)) continue;
      const value = values[name];
      if (!isRow(value)) {
        leaves.push(value);
        key += `${name},`;
      } else {
        for (const [property, inner] of defined(value)) {
          leaves.push(inner);
          key += `${name}.${property},`;
        }
      }
    }
    let entry = this.compiled.get(key);
    if (!entry) {
      const query = build(placeholdersOf(values)).compile();
      prepared(query.sql);
      const positions = new Map(Array.from({ length: leaves.length }, (_, n) => [placeholder(n), n]));
      entry = { query, slots: query.parameters.map((p) => (typeof p === 'string' ? (positions.get(p) ?? -1) : -1)) };
      if (this.compiled.size >= this.maxEntries) this.compiled.clear();
      this.compiled.set(key, entry);
    } else if (StatementCache.verifying) {
      const again = build(placeholdersOf(values)).compile().sql;
      if (again !== entry.query.sql) throw new Error(`statement shape "${shape}" names two statements:\n${entry.query.sql}\n${again}`);
    }
    const { query, slots } = entry;
    const parameters = slots.map((slot, n) => (slot < 0 ? query.parameters[n] : leaves[slot]));
    // Outside a transaction, straight to the pool (the statement is compiled already).
    const direct = runDirect(db as unknown as Kysely<never>, query.sql, parameters);
    if (direct) return { rows: (await direct).rows as R[] };
    return db.executeQuery<R>({ ...(query as CompiledQuery<R>), parameters });
  }
}

/** A compiled statement, and for each of its parameters the value it takes (-1: its own constant). */
interface Compiled {
  readonly query: CompiledQuery;
  readonly slots: readonly number[];
}

const rows = new WeakSet<object>();

/** Marks a value of StatementCache.run as a row: one parameter per property. */
export function row<T extends object>(values: T): T {
  rows.add(values);
  return values;
}

function isRow(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && rows.has(value);
}

/** A row's properties that become parameters (Kysely leaves undefined ones out). */
const defined = (value: Record<string, unknown>) => Object.entries(value).filter(([, inner]) => inner !== undefined);

/** The values with a placeholder in place of each (each property of a row), in order. */
function placeholdersOf<V extends Record<string, unknown>>(values: V): V {
  let i = 0;
  return Object.fromEntries(
    Object.entries(values).map(([name, value]) => [name, isRow(value) ? Object.fromEntries(defined(value).map(([property]) => [property, placeholder(i++)])) : placeholder(i++)]),
  ) as unknown as V;
}

function placeholder(i: number): string {
  return `\u0000statement-value-${i}\u0000`;
}
