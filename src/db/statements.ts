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
  private readonly compiled = new Map<string, CompiledQuery>();

  constructor(private readonly maxEntries = 5_000) {}

  async run<R, V extends Record<string, unknown>, DB>(db: Kysely<DB>, shape: string, values: V, build: (values: V) => Compilable<R>): Promise<QueryResult<R>> {
    const leaves: [string, unknown][] = [];
    for (const [name, value] of Object.entries(values)) {
      if (isRow(value)) for (const [property, inner] of defined(value)) leaves.push([`${name}.${property}`, inner]);
      else leaves.push([name, value]);
    }
    const key = `${shape}|${leaves.map(([path]) => path).join(',')}`;
    let statement = this.compiled.get(key) as CompiledQuery<R> | undefined;
    if (!statement) {
      let i = 0;
      const placeholders = Object.fromEntries(
        Object.entries(values).map(([name, value]) => [name, isRow(value) ? Object.fromEntries(defined(value).map(([property]) => [property, placeholder(i++)])) : placeholder(i++)]),
      ) as unknown as V;
      statement = build(placeholders).compile();
      prepared(statement.sql);
      if (this.compiled.size >= this.maxEntries) this.compiled.clear();
      this.compiled.set(key, statement);
    }
    const byPlaceholder = new Map(leaves.map(([, value], i) => [placeholder(i), value]));
    const parameters = statement.parameters.map((p) => (typeof p === 'string' && byPlaceholder.has(p) ? byPlaceholder.get(p) : p));
    // Outside a transaction, straight to the pool (the statement is compiled already).
    const direct = runDirect(db as unknown as Kysely<never>, statement.sql, parameters);
    if (direct) return { rows: (await direct).rows as R[] };
    return db.executeQuery<R>({ ...statement, parameters });
  }
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

const defined = (value: Record<string, unknown>) => Object.entries(value).filter(([, inner]) => inner !== undefined);

function placeholder(i: number): string {
  return `\u0000statement-value-${i}\u0000`;
}
