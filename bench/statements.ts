import pg from 'pg';

/** A statement this process sent, and the time to its answer (null where pg got no callback to time it by). */
export interface SentStatement {
  readonly sql: string;
  ms: number | null;
}

/**
 * Records the statements sent by every pg client of this process while `during` runs (the
 * profiles, not the suite). The service submits pg.Query objects with a callback
 * (src/db/database.ts): those are timed to it.
 */
export function statementRecorder() {
  const original = pg.Client.prototype.query;
  let sent: SentStatement[] | null = null;
  (pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const query = args[0] as string | { text?: string; callback?: (...a: unknown[]) => void } | undefined;
    if (sent) {
      const entry: SentStatement = { sql: typeof query === 'string' ? query : (query?.text ?? String(query)), ms: null };
      sent.push(entry);
      if (query && typeof query === 'object' && typeof query.callback === 'function') {
        const started = performance.now();
        const callback = query.callback;
        query.callback = (...a: unknown[]) => {
          entry.ms = performance.now() - started;
          callback(...a);
        };
      }
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  return {
    /** `work`'s result, and the statements sent while it ran. */
    async during<T>(work: () => Promise<T>): Promise<{ result: T; statements: SentStatement[] }> {
      const mine: SentStatement[] = (sent = []);
      try {
        return { result: await work(), statements: mine };
      } finally {
        sent = null;
      }
    },
    restore(): void {
      pg.Client.prototype.query = original;
    },
  };
}

/** One line of a statement for a report. */
export const oneLine = (sql: string, length: number) => sql.replace(/\s+/g, ' ').slice(0, length);
