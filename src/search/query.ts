import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { SEARCH_TABLES_0011, TRIGRAM_TABLES_0011, trigramText, userFullName, type SearchTable0011, type TrigramTable0011 } from '../db/migrations/0011_search.js';
import { MARK_END, MARK_START } from './highlight.js';

/*
 * The one statement behind GET search (docs/SEARCH.md): every readable type's matching rows
 * with their score, the page of the best, and for those only their title and snippet.
 */

/** What `types` accepts, in the order they are documented; each is its table and its permission's resource. */
export const SEARCH_TYPES = SEARCH_TABLES_0011;
export type SearchType = SearchTable0011;

/** One type as the statement searches it: its table and which of its rows its list shows (aliased `r`). */
export interface SearchSource {
  readonly type: SearchType;
  readonly listed: RawBuilder<SqlBool>;
}

/** The statement's values: the full-text query (null: none), the text, the page. */
export interface SearchValues extends Record<string, unknown> {
  readonly tsquery: string | null;
  readonly q: string;
  readonly limit: number;
  readonly offset: number;
}

export interface SearchRow {
  readonly total: number;
  /** Null on the one row of a page past the last hit (it carries the total). */
  readonly type: SearchType | null;
  readonly id: string | null;
  readonly score: number | null;
  readonly title: string | null;
  readonly headline: string | null;
}

/** The most characters of a row's text its snippet is picked from. */
const SNIPPET_TEXT_MAX = 10_000;
/** Characters of the snippet of a row when there is no full-text query. */
const PLAIN_SNIPPET_MAX = 200;
const HEADLINE_OPTIONS = `StartSel=${MARK_START}, StopSel=${MARK_END}, MaxWords=35, MinWords=15, ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "`;

const ref = (column: string) => sql.ref(column);
const TSQUERY = sql`(SELECT tsq FROM search_query)`;
/** The query text, read from the statement's first CTE like the rest of its values (see searchStatement). */
const Q = sql<string>`(SELECT q FROM search_query)`;

/** A row's score (docs/SEARCH.md, "Ranking"): an exact email or username 2, a full-text match 1 plus half its rank, plus half the trigram similarity. */
function score(type: SearchType): RawBuilder<number> {
  const fullText = sql`CASE WHEN r.search_tsv @@ ${TSQUERY} THEN 1.0::float8 + 0.5 * ts_rank(r.search_tsv, ${TSQUERY}, 33) ELSE 0.0::float8 END`;
  if (!hasTrigrams(type)) return sql<number>`(${fullText})`;
  const text = trigramText(type, 'r');
  const similarity =
    type === 'users' ? sql`greatest(shared.similarity(${userFullName('r')}, ${Q}), shared.word_similarity(${Q}, r.email))` : sql`shared.word_similarity(${Q}, ${text})`;
  const exact = type === 'users' ? sql` + CASE WHEN ${EXACT_USER} THEN 2.0::float8 ELSE 0.0::float8 END` : sql``;
  return sql<number>`(${fullText} + 0.5 * coalesce(${similarity}, 0)${exact})`;
}

const hasTrigrams = (type: SearchType): type is TrigramTable0011 => (TRIGRAM_TABLES_0011 as readonly string[]).includes(type);

const EXACT_USER = sql<SqlBool>`(lower(r.email) = (SELECT lower_q FROM search_query) OR lower(r.username) = (SELECT lower_q FROM search_query))`;

/**
 * The ways a row of a type matches, each served by an index of its own: the full-text query
 * (GIN over `search_tsv`); for a type with name-like text, the text close to a word of it
 * (pg_trgm `<%`: word similarity at least 0.6, the trigram index); for a user also a full name
 * close to the whole text (`%`: similarity at least 0.3, so `jonathon smith` finds Jonathan
 * Smyth) and an exact email or username (their unique indexes).
 */
function matches(type: SearchType): RawBuilder<SqlBool>[] {
  const conditions = [sql<SqlBool>`r.search_tsv @@ ${TSQUERY}`];
  if (hasTrigrams(type)) conditions.push(sql<SqlBool>`${Q} OPERATOR(shared.<%) ${trigramText(type, 'r')}`);
  if (type === 'users') conditions.push(sql<SqlBool>`${userFullName('r')} OPERATOR(shared.%) ${Q}`, EXACT_USER);
  return conditions;
}

/** The title and the text a snippet is picked from, of one row aliased `d`. */
const DISPLAY: Record<SearchType, { readonly title: RawBuilder<string>; readonly text: RawBuilder<string> }> = (() => {
  const fullName = sql`nullif(btrim(coalesce(d.first_name, '') || ' ' || coalesce(d.last_name, '')), '')`;
  const joined = (...columns: string[]) => sql<string>`concat_ws(' · ', ${sql.join(columns.map((c) => ref(`d.${c}`)))})`;
  return {
    users: { title: sql`coalesce(${fullName}, d.username, d.email)`, text: sql`concat_ws(' · ', ${fullName}, d.email, d.username)` },
    teams: { title: sql`d.name`, text: joined('name', 'description') },
    notes: { title: sql`d.title`, text: joined('title', 'content') },
    tasks: { title: sql`d.title`, text: joined('title', 'description') },
    events: { title: sql`d.title`, text: joined('title', 'location', 'description') },
    logacalls: { title: sql`d.phone_number || ' (' || d.direction || ')'`, text: joined('phone_number', 'notes') },
    reviews: { title: sql`coalesce(d.title, d.rating || '/5')`, text: joined('title', 'body') },
    attachments: { title: sql`d.file_name`, text: sql`d.file_name` },
  };
})();

/** The statement of one search over `sources` (at least one) in `schema`. */
export function searchStatement(schema: string, sources: readonly SearchSource[], v: SearchValues): RawBuilder<SearchRow> {
  const table = (type: SearchType) => sql.id(schema, type);
  // One select of ids per way of matching, merged (UNION), then each row scored once: an OR of
  // them would test every candidate of each index against every other way too (a word
  // similarity costs ~10 us a row).
  const hits = sources.map(({ type, listed }) => {
    const ways = matches(type);
    const scored = sql`SELECT ${sql.lit(type)}::text AS type, r.id, ${score(type)} AS score FROM ${table(type)} r`;
    if (ways.length === 1) return sql`${scored} WHERE ${listed} AND ${ways[0]!}`;
    const ids = ways.map((way) => sql`SELECT r.id FROM ${table(type)} r WHERE ${listed} AND ${way}`);
    // The ids as an array (an init plan): the rows are then read by primary key, never by a scan.
    return sql`${scored} WHERE r.id = ANY (ARRAY(${sql.join(ids, sql` UNION `)}))`;
  });
  const display = sources.map(
    ({ type }) => sql`SELECT ${DISPLAY[type].title} AS title, left(${DISPLAY[type].text}, ${sql.lit(SNIPPET_TEXT_MAX)}) AS text FROM ${table(type)} d WHERE p.type = ${sql.lit(type)} AND d.id = p.id`,
  );
  // Every value the statement varies in enters through its first CTE, read by the rest as init
  // plans: its plan is then the same whatever the values, and PostgreSQL keeps one generic plan
  // of the prepared statement instead of planning each search (~5 ms with eight types).
  return sql<SearchRow>`WITH search_query AS MATERIALIZED (
  SELECT l.config, to_tsquery(l.config, ${v.tsquery}::text) AS tsq, ${v.q}::text AS q, lower(${v.q}::text) AS lower_q,
    ${v.limit}::int AS page_limit, ${v.offset}::int AS page_offset
  FROM (SELECT ${sql.id(schema, 'search_language')}() AS config) l
), hits AS MATERIALIZED (
  ${sql.join(hits, sql`\n  UNION ALL\n  `)}
), page AS (
  SELECT type, id, score FROM hits ORDER BY score DESC, type, id LIMIT (SELECT page_limit FROM search_query) OFFSET (SELECT page_offset FROM search_query)
)
SELECT (SELECT count(*) FROM hits)::int AS total, p.type, p.id, round(p.score::numeric, 4)::float8 AS score, d.title,
  coalesce(ts_headline(s.config, translate(d.text, ${sql.lit(MARK_START + MARK_END)}, ''), s.tsq, ${sql.lit(HEADLINE_OPTIONS)}), left(d.text, ${sql.lit(PLAIN_SNIPPET_MAX)})) AS headline
FROM search_query s
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
  ${sql.join(display, sql`\n  UNION ALL\n  `)}
) d ON true
ORDER BY p.score DESC, p.type, p.id`;
}

/** The most words of a query that count (a query is at most 200 characters). */
const WORDS_MAX = 16;
/** The shortest last word matched as a prefix (shorter ones match whole words only: `j:*` would match half the tenant). */
const PREFIX_MIN = 2;

/**
 * The full-text query of a text: its words (see highlight.ts queryWords, no punctuation left to
 * escape) ANDed, the last one as a prefix (matching as one types); null for a text without words.
 */
export function tsqueryOf(words: readonly string[]): string | null {
  const used = words.slice(0, WORDS_MAX);
  if (used.length === 0) return null;
  return used.map((w, i) => `'${w}'${i === used.length - 1 && w.length >= PREFIX_MIN ? ':*' : ''}`).join(' & ');
}
