import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { TenantDatabase } from '../db/types.js';

/**
 * Users as the list writes them (JSON text built by PostgreSQL), kept by tenant schema and id
 * with the stamp of the rows they were rendered from. A list reads its page as ids and stamps;
 * a rendering is used only when its stamp equals the one just read (in the statement that read
 * the page), so a change written through any instance of the service shows in the next list.
 *
 * The stamp is the user row's `xmin` (the transaction that wrote its current version: every
 * UPDATE writes a new one, and the service updates the user row whenever it changes the user's
 * roles), and a digest of the ids and `xmin`s of the tenant's roles (a renamed or reprioritized role
 * changes the names and order shown for everyone holding it). Role assignments written by SQL
 * outside the service, without touching the user row, show once the rendering is older than
 * `ttlMs`: the bound the other in-process caches (sessions, permissions) keep for such writes.
 */
export class RenderedUsers {
  private readonly entries = new Map<string, { stamp: string; json: string; at: number }>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly ttlMs = 60_000,
  ) {}

  get(schema: string, id: string, stamp: string, now = Date.now()): string | undefined {
    const entry = this.entries.get(`${schema} ${id}`);
    return entry?.stamp === stamp && now - entry.at < this.ttlMs ? entry.json : undefined;
  }

  set(schema: string, id: string, stamp: string, json: string, now = Date.now()): void {
    const key = `${schema} ${id}`;
    if (!this.entries.delete(key) && this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { stamp, json, at: now });
  }

  get size(): number {
    return this.entries.size;
  }
}

/** A user's stamp (`alias` names a users row or a subquery selecting its `xmin`). */
export function userStamp(alias: string): RawBuilder<string> {
  return sql<string>`${sql.ref(`${alias}.xmin`)}::text`;
}

/** The stamp of the tenant's roles (an uncorrelated subquery: evaluated once per statement). */
export function rolesStamp(db: Kysely<TenantDatabase>): RawBuilder<string> {
  return sql<string>`(${db.selectFrom('roles as r').select(sql.raw(`md5(coalesce(string_agg(r.id::text || ':' || r.xmin::text, ',' ORDER BY r.id), ''))`).as('s'))})`;
}
