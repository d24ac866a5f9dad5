import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import { prepared, runDirect } from './database.js';

/**
 * Builds a statement once per shape and reuses its SQL: building and schema-qualifying a query
 * with Kysely costs more CPU than PostgreSQL spends running a simple one. The builder is called
 * with placeholder values (so it must pass values through untouched: compute patterns, dates and
 * offsets before); later calls substitute the real values into the compiled parameters.
 * `shape` must name everything that changes the SQL text (schema, which filters, sort).
 */
export class StatementCache {
  private readonly compiled = new Map<string, CompiledQuery>();

  constructor(private readonly maxEntries = 5_000) {}

  async run<R, V extends Record<string, unknown>, DB>(db: Kysely<DB>, shape: string, values: V, build: (values: V) => Compilable<R>): Promise<QueryResult<R>> {
    const names = Object.keys(values);
    const key = `${shape}|${names.join(',')}`;
    let statement = this.compiled.get(key) as CompiledQuery<R> | undefined;
    if (!statement) {
      const placeholders = Object.fromEntries(names.map((name, i) => [name, placeholder(i)])) as unknown as V;
      statement = build(placeholders).compile();
      prepared(statement.sql);
      if (this.compiled.size >= this.maxEntries) this.compiled.clear();
      this.compiled.set(key, statement);
    }
    const byPlaceholder = new Map(names.map((name, i) => [placeholder(i), values[name]]));
    const parameters = statement.parameters.map((p) => (typeof p === 'string' && byPlaceholder.has(p) ? byPlaceholder.get(p) : p));
    // Outside a transaction, straight to the pool (the statement is compiled already).
    const direct = runDirect(db as unknown as Kysely<never>, statement.sql, parameters);
    if (direct) return { rows: (await direct).rows as R[] };
    return db.executeQuery<R>({ ...statement, parameters });
  }
}

function placeholder(i: number): string {
  return `\u0000statement-value-${i}\u0000`;
}
