import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { TenantDatabase } from '../db/types.js';

/**
 * Users as the list writes them (JSON text built by PostgreSQL), kept by tenant schema and id
 * with the stamp of the rows they were rendered from. A list reads its page as ids and stamps;
 * an entry is used only when its stamp equals the one just read, in the same statement as the
 * page: so a rendering is never older than the rows the list saw, whoever wrote them (this
 * service, another instance, or SQL run by hand). Nothing needs invalidating; a stale entry
 * is replaced when next rendered, or dropped with the oldest when the map is full.
 *
 * The stamp is the user row's `xmin` (the transaction that wrote its current version: every
 * UPDATE writes a new one), the count and `xmin`s of its role assignments, and the count and
 * `xmin`s of the tenant's roles (a renamed or reprioritized role changes the names and order
 * shown for everyone holding it).
 */
export class RenderedUsers {
  private readonly entries = new Map<string, { stamp: string; json: string }>();

  constructor(private readonly maxEntries = 10_000) {}

  get(schema: string, id: string, stamp: string): string | undefined {
    const entry = this.entries.get(`${schema} ${id}`);
    return entry?.stamp === stamp ? entry.json : undefined;
  }

  set(schema: string, id: string, stamp: string, json: string): void {
    const key = `${schema} ${id}`;
    if (!this.entries.delete(key) && this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { stamp, json });
  }

  get size(): number {
    return this.entries.size;
  }
}

const xids = (alias: string) => sql.raw(`count(*)::text || ':' || coalesce(sum(${alias}.xmin::text::bigint), 0)::text`);

/** The stamp of a user: its row version and its role assignments (`alias` selects `id` and `xmin`). */
export function userStamp(db: Kysely<TenantDatabase>, alias: string): RawBuilder<string> {
  const assignments = db.selectFrom('user_roles as ur').select(xids('ur').as('s')).where('ur.user_id', '=', sql<string>`${sql.ref(`${alias}.id`)}`);
  return sql<string>`${sql.ref(`${alias}.xmin`)}::text || '/' || (${assignments})`;
}

/** The stamp of the tenant's roles (an uncorrelated subquery: evaluated once per statement). */
export function rolesStamp(db: Kysely<TenantDatabase>): RawBuilder<string> {
  return sql<string>`(${db.selectFrom('roles as r').select(xids('r').as('s'))})`;
}
