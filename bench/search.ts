/**
 * The search scenario of bench/run.ts: one tenant filled in SQL with searchable rows of every
 * type (users, teams, notes, tasks, events, call logs, reviews, attachments), the queries the
 * load sends in turn, and the floor's statement: the service's own SQL, compiled once.
 */
import { sql, type Kysely, type QueryExecutorProvider, type RawBuilder } from 'kysely';
import { poolOf } from '../src/db/database.js';
import type { PlatformDatabase } from '../src/db/platform-types.js';
import { recordServices } from '../src/records/index.js';
import { queryWords } from '../src/search/highlight.js';
import { SEARCH_TYPES, searchStatement, tsqueryOf, type SearchValues } from '../src/search/query.js';
import { searchSources } from '../src/search/service.js';
import type { SchemaManager } from '../src/tenancy/schema-manager.js';
import { planScans, type ExplainRow, type Turn } from './plan.js';

type Db = Kysely<PlatformDatabase>;

const FIRST_NAMES = ['Jonathan', 'Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Sophia', 'Elijah', 'Mia', 'Lucas', 'Chloé', 'Mateo', 'Aisha', 'Kenji', 'Ingrid', 'Rafael', 'Zoë', 'Tomasz', 'Priya', 'Jonas', 'Hannah', 'Samuel', 'Fatima', 'Mohammed', 'Grace', 'Leon', 'Yuki', 'Carmen', 'Felix', 'Nora', 'Diego', 'Elena', 'Victor', 'Ruth', 'Arjun', 'Lena', 'Oscar', 'Maya', 'Hugo'];
const LAST_NAMES = ['Smyth', 'Smith', 'Johnson', 'García', 'Müller', 'Dubois', 'Rossi', 'Nakamura', 'Kowalski', 'Patel', 'Nguyen', 'Andersson', 'Okafor', 'Silva', "O'Brien", 'Fischer', 'Lefebvre', 'Haddad', 'Novak', 'Jansen', 'Costa', 'Schneider', 'Moreau', 'Romano', 'Tanaka', 'Wójcik', 'Shah', 'Tran', 'Berg', 'Eze', 'Santos', 'Weber', 'Laurent', 'Ricci', 'Suzuki', 'Lewandowski', 'Kumar', 'Pham', 'Lund', 'Adeyemi'];
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com'];
const DEPARTMENTS = ['Sales', 'Support', 'Engineering', 'Finance', 'Operations', 'Marketing', 'Legal', 'People', 'Research', 'Procurement'];
const CITIES = ['Berlin', 'Lisbon', 'Osaka', 'Toronto', 'Nairobi', 'Lyon', 'Austin', 'Krakow', 'Pune', 'Oslo', 'Bogotá', 'Sydney'];
const TOPICS = ['the Q3 budget review', 'the onboarding checklist', 'the contract renewal with Northwind', 'the office move in March', 'the yearly security audit', 'the customer escalation from Contoso', 'the pricing page update', 'the warehouse inventory count', 'the new hire training plan', 'the invoice dispute with Fabrikam', 'the mobile app release', 'the supplier shortlist', 'the data retention policy', 'the partner summit agenda', 'the support backlog', 'the hiring plan for Lisbon'];
const OPENINGS = ['Follow up on', 'Notes from the call about', 'Question about', 'Summary of', 'Draft plan for', 'Feedback on', 'Reminder about', 'Decision on', 'Open issues in', 'Next steps for'];
const SENTENCES = [
  'Met with the team this morning to go over the open items.',
  'They asked for a revised quote by the end of the week, with the discount applied to the second year only.',
  'Most of the questions were about delivery dates; nobody objected to the scope as written.',
  'The numbers are close to the forecast, but travel costs are running about ten percent over.',
  'Two of the requirements still conflict with each other and need a decision from the steering group.',
  'The legal team wants one more pass over the liability clause before anything is signed.',
  'I will send a summary to everyone involved and book a follow-up for next Tuesday.',
  'No decision yet; revisit once the new estimates are in.',
];
const EVENT_KINDS = ['Workshop', 'Review meeting', 'Kick-off', 'Town hall', 'Training', 'Planning session', 'Offsite', 'Demo day'];
const EXTENSIONS = [['pdf', 'application/pdf'], ['xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'], ['png', 'image/png'], ['docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'], ['csv', 'text/csv']] as const;
/** Syllables of the made-up words that make each note's text its own: 16^3 = 4,096 words, each in ~0.1% of the notes. */
const SYLLABLES = ['ka', 'lo', 'mi', 're', 'tu', 'san', 'vo', 'pel', 'di', 'gor', 'ne', 'bri', 'zu', 'fa', 'hel', 'mon'];

/** How the searchable rows are shared among the types (sums to 1). */
const SHARES = { users: 0.1, teams: 0.003, notes: 0.5, tasks: 0.2, events: 0.08, logacalls: 0.06, reviews: 0.037, attachments: 0.02 } as const;

/**
 * What the load asks, in turn (one request each): a name with typos in both words, an email
 * prefix, a word of notes' text (~0.1% of them), an exact email, a title word half typed (in
 * 1 of 16 titles: ~5,000 hits at 100,000 rows, the heavy one).
 */
export const SEARCH_QUERIES = ['jonathon smith', 'olivia.gar', 'kalomi', 'liam.smith42@example.net', 'invent'];

export interface SearchTenant {
  readonly id: string;
  readonly slug: string;
  readonly schema: string;
  /** A user with the default `user` role (who reads users, teams and records), to search as. */
  readonly reader: string;
  /** Searchable rows, by type, and in all. */
  readonly counts: Record<string, number>;
  readonly rows: number;
  readonly seconds: number;
}

/**
 * Registers and provisions tenant `slug`, then fills it in SQL (the owner's connection,
 * `INSERT ... SELECT generate_series`) with about `rows` searchable rows shared among the types
 * as SHARES says; 1% of the records soft-deleted, a third of the notes attached to a user.
 * Vacuumed and analyzed afterwards.
 */
export async function seedSearchTenant(db: Db, schemas: SchemaManager, options: { slug: string; rows: number; passwordHash: string }): Promise<SearchTenant> {
  const t = performance.now();
  const { slug } = options;
  const schema = `tenant_${slug}`;
  const { id } = await db.withSchema('shared').insertInto('tenants').values({ slug, name: 'Bench search tenant', schema_name: schema }).returning('id').executeTakeFirstOrThrow();
  await schemas.initializeTenantSchema(id, schema);
  const table = (name: string) => sql.id(schema, name);
  const pick = (values: readonly string[], index: RawBuilder<unknown>) => sql`(${values}::text[])[1 + (${index}) % ${values.length}]`;
  const i = sql.ref('i');
  const n = Object.fromEntries(Object.entries(SHARES).map(([type, share]) => [type, Math.max(1, Math.round(options.rows * share))])) as Record<keyof typeof SHARES, number>;
  const word = (index: RawBuilder<unknown>) => sql`${pick(SYLLABLES, index)} || ${pick(SYLLABLES, sql`(${index}) / 16`)} || ${pick(SYLLABLES, sql`(${index}) / 256`)}`;
  const words = sql`${word(sql`i * 7 + 1`)} || ' ' || ${word(sql`i * 13 + 5`)} || ' ' || ${word(sql`i * 31 + 11`)} || ' ' || ${word(sql`i * 61 + 3`)}`;
  const text = sql`${pick(SENTENCES, i)} || ' ' || ${words} || '. ' || ${pick(SENTENCES, sql`i / 7 + 3`)}`;
  const title = sql`${pick(OPENINGS, i)} || ' ' || ${pick(TOPICS, sql`i / ${OPENINGS.length}`)}`;
  const deleted = sql`CASE WHEN i % 100 = 0 THEN now() END`;
  const first = pick(FIRST_NAMES, i);
  const last = pick(LAST_NAMES, sql`i / ${FIRST_NAMES.length}`);
  const ascii = (name: RawBuilder<unknown>) => sql`lower(translate(${name}, 'éëüíóáö''', 'eeuioao'))`;
  await sql`
    INSERT INTO ${table('users')} (email, username, password_hash, first_name, last_name, status)
    SELECT ${ascii(first)} || '.' || ${ascii(last)} || i || '@' || ${pick(DOMAINS, sql`i / 7`)}, left(${ascii(first)}, 1) || ${ascii(last)} || i,
           ${options.passwordHash}::text, ${first}, ${last}, CASE WHEN i % 97 = 0 THEN 'suspended' ELSE 'active' END
    FROM generate_series(1, ${n.users}::int) i`.execute(db);
  await sql`
    INSERT INTO ${table('user_roles')} (user_id, role_id)
    SELECT u.id, r.id FROM ${table('users')} u, ${table('roles')} r WHERE r.name = 'user' AND r.deleted_at IS NULL`.execute(db);
  const reader = (await sql<{ email: string }>`SELECT min(email) AS email FROM ${table('users')}`.execute(db)).rows[0]!.email;
  await sql`
    INSERT INTO ${table('teams')} (name, description)
    SELECT ${pick(DEPARTMENTS, i)} || ' ' || ${pick(CITIES, sql`i / ${DEPARTMENTS.length}`)} || ' ' || i, 'The ' || ${pick(DEPARTMENTS, i)} || ' team in ' || ${pick(CITIES, sql`i / ${DEPARTMENTS.length}`)}
    FROM generate_series(1, ${n.teams}::int) i`.execute(db);
  const people = sql`(SELECT array_agg(id ORDER BY email) AS ids, count(*)::int AS n FROM ${table('users')}) u`;
  const someone = sql`u.ids[1 + (i * 13) % u.n]`;
  await sql`
    INSERT INTO ${table('notes')} (notable_type, notable_id, title, content, deleted_at)
    SELECT CASE WHEN i % 3 = 0 THEN 'users' END, CASE WHEN i % 3 = 0 THEN ${someone} END, ${title}, ${text}, ${deleted}
    FROM ${people}, generate_series(1, ${n.notes}::int) i`.execute(db);
  await sql`
    INSERT INTO ${table('tasks')} (title, description, deleted_at)
    SELECT ${title}, CASE WHEN i % 5 = 0 THEN NULL ELSE ${text} END, ${deleted} FROM generate_series(1, ${n.tasks}::int) i`.execute(db);
  await sql`
    INSERT INTO ${table('events')} (title, description, location, starts_at, ends_at, deleted_at)
    SELECT ${pick(EVENT_KINDS, i)} || ': ' || ${pick(TOPICS, sql`i / ${EVENT_KINDS.length}`)}, ${text}, ${pick(CITIES, i)} || ', room ' || (i % 40),
           now() + make_interval(hours => i % 5000), now() + make_interval(hours => i % 5000 + 2), ${deleted}
    FROM generate_series(1, ${n.events}::int) i`.execute(db);
  await sql`
    INSERT INTO ${table('logacalls')} (direction, phone_number, called_at, duration_seconds, notes, deleted_at)
    SELECT CASE WHEN i % 2 = 0 THEN 'inbound' ELSE 'outbound' END, '+1555' || lpad(i::text, 7, '0'), now() - make_interval(mins => i), i % 900, ${text}, ${deleted}
    FROM generate_series(1, ${n.logacalls}::int) i`.execute(db);
  await sql`
    INSERT INTO ${table('reviews')} (rating, title, body, deleted_at)
    SELECT 1 + i % 5, 'Review of ' || ${pick(TOPICS, i)}, ${text}, ${deleted} FROM generate_series(1, ${n.reviews}::int) i`.execute(db);
  const extension = pick(EXTENSIONS.map(([e]) => e), i);
  await sql`
    INSERT INTO ${table('attachments')} (file_name, content_type, size_bytes, checksum_sha256, storage_key, deleted_at)
    SELECT replace(initcap(${pick(TOPICS, i)}), ' ', '-') || '-' || i || '.' || ${extension}, ${pick(EXTENSIONS.map(([, type]) => type), i)}, 1000 + i,
           md5(i::text) || md5((i + 1)::text), 'bench/' || i, ${deleted}
    FROM generate_series(1, ${n.attachments}::int) i`.execute(db);
  for (const name of SEARCH_TYPES) await sql`VACUUM (ANALYZE) ${table(name)}`.execute(db);
  return { id, slug, schema, reader, counts: n, rows: Object.values(n).reduce((a, b) => a + b, 0), seconds: (performance.now() - t) / 1000 };
}

/**
 * The floor's statement for `schema`: exactly the SQL the service sends for a caller who may
 * read every type, compiled once; `values(q)` gives its parameters for a query text.
 */
export function floorSearchStatement(db: QueryExecutorProvider, schema: string): { text: string; values: (q: string, limit: number) => unknown[] } {
  const stub = undefined as never;
  const records = recordServices({ db: db as never, storage: stub, secrets: stub, policies: stub });
  const marks = { tsquery: '\u0000tsquery', q: '\u0000q', limit: '\u0000limit', offset: '\u0000offset' };
  const compiled = searchStatement(schema, searchSources(records, schema, SEARCH_TYPES), marks as unknown as SearchValues).compile(db);
  return {
    text: compiled.sql,
    values: (q, limit) => {
      const v: Record<string, unknown> = { [marks.tsquery]: tsqueryOf(queryWords(q)), [marks.q]: q.trim(), [marks.limit]: limit, [marks.offset]: 0 };
      return compiled.parameters.map((p) => (typeof p === 'string' && p in v ? v[p] : p));
    },
  };
}

/**
 * The plan of the statement for query `q`, from EXPLAIN (ANALYZE, FORMAT JSON): every node that
 * read a table or an index, and PostgreSQL's own execution time.
 */
export async function explainSearch(db: Db, schema: string, q: string) {
  const statement = floorSearchStatement(db, schema);
  const { rows } = await poolOf(db).query<ExplainRow>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values(q, 20));
  return planScans(rows[0]!);
}

export interface SearchScenarioOptions {
  readonly db: Db;
  readonly schemas: SchemaManager;
  readonly passwordHash: string;
  readonly rows: number;
  readonly rounds: number;
  /** The service's and the floor's base URLs. */
  readonly base: string;
  readonly floorBase: string;
  /** An access token of a tenant's user, by signing in through the service. */
  readonly token: (slug: string, email: string) => Promise<string>;
  /** One measured turn (bench/run.ts `load`): GET of each path in turn, on each of `connections` (default: the harness's). */
  readonly measure: (name: string, base: string, paths: string[], headers?: Record<string, string>, connections?: number) => Promise<Turn>;
  /** Waits for the fill's checkpoint and autovacuum, as the other seeded scenarios do. */
  readonly settle: () => Promise<unknown>;
  /** One unmeasured turn of each side first: every pooled connection of both plans its first searches (~5 ms each) before the measured turns. */
  readonly warmUp: boolean;
  readonly log: (message: string) => void;
}

/** The goals: p99 under 50 ms, and at least 0.7 of the floor's requests per second. */
const GOAL_P99_MS = 50;
const GOAL_RATIO = 0.7;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The search scenario: the tenant seeded, then `rounds` rounds of four turns, each sending
 * SEARCH_QUERIES in turn: the floor and the service with the harness's connections (requests
 * per second, and the ratio), then both with one connection (one request's latency: with eight
 * connections on a machine of two cores, a p99 is mostly the wait for a core). The median
 * turns; then each query's plan, run once more under EXPLAIN ANALYZE.
 */
export async function searchScenario(o: SearchScenarioOptions) {
  const tenant = await seedSearchTenant(o.db, o.schemas, { slug: 'search', rows: o.rows, passwordHash: o.passwordHash });
  o.log(`search tenant: ${tenant.rows} searchable rows seeded in ${tenant.seconds.toFixed(1)} s`);
  await o.settle();
  const headers = { authorization: `Bearer ${await o.token(tenant.slug, tenant.reader)}` };
  const query = (q: string) => `q=${encodeURIComponent(q)}&page_size=20`;
  const servicePaths = SEARCH_QUERIES.map((q) => `/api/v1/tenants/${tenant.slug}/search?${query(q)}`);
  const floorPaths = SEARCH_QUERIES.map((q) => `/floor/${tenant.schema}/search?${query(q)}`);
  if (o.warmUp) {
    await o.measure('warm-up floor_search', o.floorBase, floorPaths);
    await o.measure('warm-up search', o.base, servicePaths, headers);
  }
  const turns = { floor: [] as Turn[], service: [] as Turn[], floorAlone: [] as Turn[], alone: [] as Turn[] };
  for (let round = 0; round < o.rounds; round++) {
    turns.floor.push(await o.measure('floor_search', o.floorBase, floorPaths));
    turns.service.push(await o.measure('search', o.base, servicePaths, headers));
    turns.floorAlone.push(await o.measure('floor_search (1 connection)', o.floorBase, floorPaths, {}, 1));
    turns.alone.push(await o.measure('search (1 connection)', o.base, servicePaths, headers, 1));
  }
  const figures = (runs: Turn[]) => ({
    rps: median(runs.map((r) => r.rps)),
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    rounds: runs.map((r) => r.rps),
    p99_rounds: runs.map((r) => r.p99_ms),
    cpu_us_per_request: [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!.cpu_us_per_request,
  });
  const service = figures(turns.service);
  const floor = figures(turns.floor);
  const plans: Record<string, Awaited<ReturnType<typeof explainSearch>>> = {};
  for (const q of SEARCH_QUERIES) plans[q] = await explainSearch(o.db, tenant.schema, q);
  return {
    tenant: { slug: tenant.slug, rows: tenant.rows, counts: tenant.counts, seed_s: Number(tenant.seconds.toFixed(1)), rounds: o.rounds },
    queries: SEARCH_QUERIES,
    goal_p99_ms: GOAL_P99_MS,
    goal_ratio_to_floor: GOAL_RATIO,
    search: { ...service, ratio_to_floor: Number((service.rps / Math.max(1, floor.rps)).toFixed(3)), ratio_rounds: turns.service.map((r, i) => Number((r.rps / Math.max(1, turns.floor[i]!.rps)).toFixed(3))) },
    floor_search: floor,
    one_connection: { search: figures(turns.alone), floor_search: figures(turns.floorAlone) },
    plans,
    measured: `GET search?q=...&page_size=20 as a user with the default role (every type readable), the queries in turn on each connection, each turn after a turn of floor_search (the same statement, named and prepared, straight through pg as the owner), with the harness's connections and then with one; the median turns; plans: EXPLAIN ANALYZE of each query's statement afterwards (nodes that ran)`,
  };
}
