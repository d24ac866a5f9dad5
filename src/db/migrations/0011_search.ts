import { sql, type RawBuilder } from 'kysely';
import type { MigrationContext, MigrationStatement, TenantMigration } from './migration.js';

/*
 * Search (docs/SEARCH.md): every searchable table gets
 *  - `search_config regconfig`: the text search configuration its row is indexed with, by
 *    default the tenant's `search.language` setting (read by `search_language()`); a change of
 *    the setting updates it on every row in the same transaction (src/search/language.ts);
 *  - `search_tsv tsvector`, generated from the row's text and `search_config`, with a GIN index
 *    over live rows: a changed row is searchable as soon as it commits;
 *  - where it has name-like text (users, teams, call logs, attachments), a GIN trigram index
 *    (pg_trgm, in `shared`) over it: typo tolerance, and the `search` parameter of those list
 *    routes (ILIKE) served by an index.
 *
 * Like every shipped migration this file is immutable: the expressions below are the ones the
 * indexes were built on, and the search queries import them from here, so that the planner
 * matches them to the indexes. Changing one needs a new migration (and the imports moved to it).
 */

/** The searchable tables, in the order `GET search` lists its types. */
export const SEARCH_TABLES_0011 = ['users', 'teams', 'notes', 'tasks', 'events', 'logacalls', 'reviews', 'attachments'] as const;
export type SearchTable0011 = (typeof SEARCH_TABLES_0011)[number];

/** The longest text of one field that goes into a row's vector (a tsvector holds at most 1 MB). */
const FIELD_MAX = 100_000;

type Weight = 'A' | 'B' | 'C' | 'D';

/**
 * One field's share of a row's vector: its words (ASCII punctuation taken as a word break, so
 * that `jonathan.smyth@example.com` and `Q3-report_final.pdf` are words a query can name) under
 * the row's configuration, weighted.
 */
function weighted(column: string, weight: Weight): RawBuilder<unknown> {
  const text = sql`left(coalesce(${sql.ref(column)}, ''), ${sql.lit(FIELD_MAX)})`;
  return sql`setweight(to_tsvector(search_config, regexp_replace(${text}, '[[:punct:][:space:]]+', ' ', 'g')), ${sql.lit(weight)})`;
}

/** What each table's vector is made of, field by field. */
const VECTOR_FIELDS: Record<SearchTable0011, readonly (readonly [string, Weight])[]> = {
  users: [['first_name', 'A'], ['last_name', 'A'], ['username', 'A'], ['email', 'B']],
  teams: [['name', 'A'], ['description', 'B']],
  notes: [['title', 'A'], ['content', 'B']],
  tasks: [['title', 'A'], ['description', 'B']],
  events: [['title', 'A'], ['location', 'B'], ['description', 'C']],
  logacalls: [['phone_number', 'A'], ['notes', 'B']],
  reviews: [['title', 'A'], ['body', 'B']],
  attachments: [['file_name', 'A']],
};

function vectorOf(table: SearchTable0011): RawBuilder<unknown> {
  return sql.join(VECTOR_FIELDS[table].map(([column, weight]) => weighted(column, weight)), sql` || `);
}

/**
 * The tables with a trigram index, and the name-like text it covers: every name a user goes by
 * (which the users list's `search` ILIKE is served by too), a team's name, a call's number, a
 * file's name. Titles and texts of notes, tasks, events and reviews have none: their words are
 * in the vector, and a trigram scan of a common prefix over long text costs more than it finds.
 */
export const TRIGRAM_TABLES_0011 = ['users', 'teams', 'logacalls', 'attachments'] as const;
export type TrigramTable0011 = (typeof TRIGRAM_TABLES_0011)[number];

/** A table's trigram text over the table aliased `alias` (or unqualified, as the index is built). */
export function trigramText(table: TrigramTable0011, alias?: string): RawBuilder<string> {
  const c = (column: string) => sql.ref(alias ? `${alias}.${column}` : column);
  if (table === 'users') return sql<string>`(coalesce(${c('first_name')}, '') || ' ' || coalesce(${c('last_name')}, '') || ' ' || ${c('email')} || ' ' || coalesce(${c('username')}, ''))`;
  return sql<string>`${c({ teams: 'name', logacalls: 'phone_number', attachments: 'file_name' }[table])}`;
}

/** A user's full name as the second users trigram index covers it. */
export function userFullName(alias?: string): RawBuilder<string> {
  const c = (column: string) => sql.ref(alias ? `${alias}.${column}` : column);
  return sql<string>`(coalesce(${c('first_name')}, '') || ' ' || coalesce(${c('last_name')}, ''))`;
}

/** `CREATE INDEX ... USING gin (<text> shared.gin_trgm_ops) WHERE deleted_at IS NULL` (Kysely cannot name an operator class). */
function trigramIndex(schemaName: string, name: string, table: string, text: RawBuilder<string>): MigrationStatement {
  return sql`create index ${sql.id(name)} on ${sql.id(schemaName, table)} using gin ((${text}) shared.gin_trgm_ops) where deleted_at is null`;
}

function searchColumns({ schema, schemaName }: MigrationContext, table: SearchTable0011): MigrationStatement[] {
  return [
    // Both columns in one statement: the table is rewritten once.
    schema
      .alterTable(table)
      .addColumn('search_config', sql`regconfig`, (c) => c.notNull().defaultTo(sql`${sql.id(schemaName, 'search_language')}()`))
      .addColumn('search_tsv', sql`tsvector`, (c) => c.notNull().generatedAlwaysAs(vectorOf(table)).stored()),
    schema.createIndex(`${table}_search_tsv_idx`).on(table).using('gin').column('search_tsv').where(sql.ref('deleted_at'), 'is', null),
  ];
}

export const search: TenantMigration = {
  version: 11,
  name: 'search',
  statements: (ctx) => [
    // The tenant's configuration: a built-in one its setting names, else `simple`. The body is
    // parsed once (a SQL-standard body), so it keeps naming this schema's `settings` when the
    // schema is renamed (a spare taken by a new tenant).
    sql`create function ${sql.id(ctx.schemaName, 'search_language')}() returns regconfig language sql stable parallel safe
return coalesce((select c.oid::regconfig from pg_catalog.pg_ts_config c join ${sql.id(ctx.schemaName, 'settings')} s on s.key = 'search.language'
  where c.cfgnamespace = 'pg_catalog'::regnamespace and c.cfgname = s.value #>> '{}'), 'pg_catalog.simple'::regconfig)`,
    ...SEARCH_TABLES_0011.flatMap((table) => searchColumns(ctx, table)),
    ...TRIGRAM_TABLES_0011.map((table) => trigramIndex(ctx.schemaName, `${table}_search_trgm_idx`, table, trigramText(table))),
    trigramIndex(ctx.schemaName, 'users_search_name_trgm_idx', 'users', userFullName()),
  ],
};
