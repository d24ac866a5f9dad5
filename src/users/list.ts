import { sql, type Kysely } from 'kysely';
import { tenantDb } from '../db/database.js';
import { likePattern, parseSort } from '../db/listing.js';
import { trigramText } from '../db/migrations/0011_search.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { StatementCache } from '../db/statements.js';
import type { TenantDatabase } from '../db/types.js';
import type { TenantContext } from '../tenancy/directory.js';
import { rolesStamp, RenderedUsers, userStamp } from './rendered.js';
import { userJson } from './view.js';

export interface UserListQuery {
  page: number;
  page_size: number;
  search?: string;
  sort?: string;
  status?: string;
  role?: string;
  team?: string;
  created_from?: string;
  created_to?: string;
}

interface ListValues extends Record<string, unknown> {
  status?: string;
  pattern?: string;
  role?: string;
  team?: string;
  from?: Date;
  to?: Date;
  limit: number;
  offset: number;
}

/** The user list: a page of ids and stamps, each user's JSON from a rendered copy or from PostgreSQL. */
export class UserList {
  private readonly statements = new StatementCache();
  private readonly renderings = new RenderedUsers();

  constructor(private readonly db: Kysely<PlatformDatabase>) {}

  async list(tenant: TenantContext, query: UserListQuery) {
    const db = tenantDb(this.db, tenant.schema);
    const sort = parseSort(query.sort, { column: 'created_at', direction: 'asc' });
    // Values only; which of them are present (and the sort) make the statement's shape.
    const values = Object.fromEntries(
      Object.entries({
        status: query.status,
        pattern: query.search === undefined ? undefined : likePattern(query.search),
        role: query.role?.toLowerCase(),
        team: query.team,
        from: query.created_from === undefined ? undefined : new Date(query.created_from),
        to: query.created_to === undefined ? undefined : new Date(query.created_to),
        limit: query.page_size,
        offset: (query.page - 1) * query.page_size,
      }).filter(([, v]) => v !== undefined),
    ) as ListValues;
    const filtered = (v: ListValues) => {
      let base = db.selectFrom('users').where('users.deleted_at', 'is', null);
      if (v.status !== undefined) base = base.where('users.status', '=', v.status);
      if (v.pattern !== undefined) {
        const pattern = v.pattern;
        // Any of the four fields holds the text: the trigram index over all four together
        // (migration 0011) finds the candidates, the fields one by one decide.
        base = base
          .where(trigramText('users', 'users'), 'ilike', pattern)
          .where((eb) => eb.or(['email', 'username', 'first_name', 'last_name'].map((c) => eb(sql.ref(`users.${c}`), 'ilike', pattern))));
      }
      if (v.role !== undefined) {
        const role = v.role;
        base = base.where((eb) =>
          eb.exists(eb.selectFrom('user_roles as ur').innerJoin('roles as r', 'r.id', 'ur.role_id').select('ur.id').whereRef('ur.user_id', '=', 'users.id').where(sql`lower(r.name)`, '=', role)),
        );
      }
      if (v.team !== undefined) {
        const team = v.team;
        base = base.where((eb) => eb.exists(eb.selectFrom('team_members as tm').select('tm.id').whereRef('tm.user_id', '=', 'users.id').where('tm.team_id', '=', team)));
      }
      if (v.from !== undefined) base = base.where('users.created_at', '>=', v.from);
      if (v.to !== undefined) base = base.where('users.created_at', '<', v.to);
      return base;
    };
    // The page as ids and stamps, and the total as a count of its own, in one round trip (a
    // window count over the page query would carry every matching row through the sort: 2.5x
    // slower with 2,000 users, and growing with the tenant). Each user's JSON comes from the
    // rendered copy of that very stamp, or is rendered by PostgreSQL for those it lacks (the
    // service passes the text through); rendering and role names were most of the list's cost.
    const shape = `users.list:${tenant.schema}:${sort.column}:${sort.direction}`;
    const order = (alias: string) => sql`${sql.ref(`${alias}.${sort.column}`)} ${sql.raw(sort.direction)} nulls last, ${sql.ref(`${alias}.id`)}`;
    const { rows } = await this.statements.run(db, shape, values, (v) =>
      db
        .selectFrom(
          filtered(v)
            .select(['users.id', sql.ref<string>(`users.${sort.column}`).as(sort.column), sql<string>`users.xmin`.as('xmin')])
            .orderBy(order('users'))
            .limit(v.limit)
            .offset(v.offset)
            .as('page'),
        )
        .select(sql<string | null>`string_agg(page.id::text || ' ' || ${userStamp('page')}, ',' ORDER BY ${order('page')})`.as('page'))
        .select(() => filtered(v).select((eb) => eb.fn.countAll<string>().as('n')).as('total'))
        .select(rolesStamp(db).as('roles')),
    );
    const { page, total, roles } = rows[0]!;
    const items = await this.rendered(db, tenant.schema, page ? page.split(',') : [], roles);
    return `{"items":[${items.join(',')}],"total":${Number(total)},"page":${query.page},"page_size":${query.page_size}}`;
  }

  /** Each listed user's JSON (`id stamp` entries, in order): the rendered copy, or rendered now. */
  private async rendered(db: Kysely<TenantDatabase>, schema: string, listed: string[], roles: string): Promise<string[]> {
    const now = Date.now();
    const ids = listed.map((entry) => entry.slice(0, entry.indexOf(' ')));
    const items = listed.map((entry, i) => this.renderings.get(schema, ids[i]!, `${entry.slice(ids[i]!.length + 1)} ${roles}`, now));
    const missing = ids.filter((_, i) => items[i] === undefined);
    if (missing.length === 0) return items as string[];
    const { rows } = await this.statements.run(db, `users.render:${schema}`, { ids: missing }, (v) =>
      db
        .selectFrom('users')
        .select(['users.id', userStamp('users').as('stamp'), rolesStamp(db).as('roles'), userJson(db, 'users').as('json')])
        .where(sql<boolean>`users.id = any(${v.ids}::uuid[])`)
        .where('users.deleted_at', 'is', null),
    );
    // Rendered in a later snapshot than the page: a user changed in between is shown as it is
    // now (even if it no longer matches the filters), and one deleted in between is left out
    // (the page comes back one short of what the total counted).
    const current = new Map(rows.map((r) => [r.id, r.json]));
    for (const r of rows) this.renderings.set(schema, r.id, `${r.stamp} ${r.roles}`, r.json, now);
    return ids.flatMap((id, i) => items[i] ?? current.get(id) ?? []);
  }

}
