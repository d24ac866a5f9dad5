/**
 * The tenant lifecycle scenarios of bench/run.ts: one large tenant seeded in SQL, its export
 * read over HTTP beside a floor of bare COPY streams, and its fork.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { to as copyTo } from 'pg-copy-streams';
import { poolOf } from '../src/db/database.js';
import type { PlatformDatabase } from '../src/db/platform-types.js';
import { NOT_ARCHIVED, storedRows, type Manifest } from '../src/tenancy/archive.js';
import type { SchemaManager } from '../src/tenancy/schema-manager.js';

type Db = Kysely<PlatformDatabase>;

const FIRST_NAMES = ['Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Sophia', 'Elijah', 'Mia', 'Lucas', 'Chloé', 'Mateo', 'Aisha', 'Kenji', 'Ingrid', 'Rafael', 'Zoë', 'Tomasz', 'Priya', 'Jonas'];
const LAST_NAMES = ['Smith', 'Johnson', 'García', 'Müller', 'Dubois', 'Rossi', 'Nakamura', 'Kowalski', 'Patel', 'Nguyen', 'Andersson', 'Okafor', 'Silva', "O'Brien", 'Fischer', 'Lefebvre', 'Haddad', 'Novak', 'Jansen', 'Costa'];
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com'];
const DEPARTMENTS = ['Sales', 'Support', 'Engineering', 'Finance', 'Operations', 'Marketing', 'Legal', 'People'];
const LOCALES = ['en-US', 'en-GB', 'fr-FR', 'de-DE', 'es-ES', 'ja-JP'];
const TIMEZONES = ['America/New_York', 'Europe/London', 'Europe/Paris', 'Europe/Berlin', 'Europe/Madrid', 'Asia/Tokyo'];
const TITLE_OPENINGS = ['Follow up on', 'Notes from the call about', 'Question about', 'Summary of', 'Draft plan for', 'Feedback on', 'Reminder about', 'Decision on', 'Open issues in', 'Next steps for'];
const TOPICS = [
  'the Q3 budget review',
  'the onboarding checklist',
  'the contract renewal with Northwind',
  'the office move in March',
  'the yearly security audit',
  'the customer escalation from Contoso',
  'the pricing page update',
  'the warehouse inventory count',
  'the new hire training plan',
  'the invoice dispute with Fabrikam',
  'the mobile app release',
  'the supplier shortlist',
];
const OPENERS = [
  'Met with the team this morning to go over the open items.',
  'Spoke to the customer on the phone for about twenty minutes.',
  'Went through the latest figures with finance.',
  'Had a short call with the vendor after their demo.',
  'Reviewed the document we shared last week.',
  'Caught up with the project lead after the stand-up.',
];
const MIDDLES = [
  'They asked for a revised quote by the end of the week, with the discount we discussed applied to the second year only.',
  'Most of the questions were about delivery dates; nobody objected to the scope as written.',
  'The numbers are close to the forecast, but travel costs are running about ten percent over.',
  'Two of the requirements still conflict with each other and need a decision from the steering group.',
  'Everyone agreed the current process is too slow, though not on what to replace it with.',
  'The legal team wants one more pass over the liability clause before anything is signed.',
  'We still have no answer from the landlord about the parking spaces.',
];
const CLOSERS = [
  'I will send a summary to everyone involved and book a follow-up for next Tuesday.',
  'Action: update the shared spreadsheet and flag anything that slips past Friday.',
  'No decision yet; revisit once the new estimates are in.',
  'Please add comments to the draft before the next meeting rather than by email.',
  'Marked as low risk for now, but worth keeping an eye on.',
];

export interface SeededTenant {
  readonly id: string;
  readonly slug: string;
  readonly schema: string;
  readonly users: number;
  readonly records: number;
  readonly seconds: number;
}

/**
 * Registers and provisions tenant `slug`, then fills it straight in SQL (the owner's
 * connection, `INSERT ... SELECT generate_series`): `users` users, each with the default user
 * role, and `records` records, 60% notes and 40% tasks, spread over two years, written by and
 * assigned to those users. Vacuumed and analyzed afterwards, so that neither side of the
 * export comparison pays for hint bits or autovacuum.
 */
export async function seedLargeTenant(db: Db, schemas: SchemaManager, options: { slug: string; users: number; records: number; passwordHash: string }): Promise<SeededTenant> {
  const t = performance.now();
  const { slug, users, records } = options;
  const schema = `tenant_${slug}`;
  const { id } = await db.withSchema('shared').insertInto('tenants').values({ slug, name: 'Bench lifecycle tenant', schema_name: schema }).returning('id').executeTakeFirstOrThrow();
  await schemas.initializeTenantSchema(id, schema);
  const table = (name: string) => sql.id(schema, name);
  const pick = (values: readonly string[], index: RawBuilder<unknown>) => sql`(${values}::text[])[1 + (${index}) % ${values.length}]`;
  const i = sql.ref('i');
  await sql`
    INSERT INTO ${table('users')} (email, username, password_hash, first_name, last_name, phone, locale, timezone, status, is_email_verified, email_verified_at, last_login_at, metadata, created_at, updated_at)
    SELECT lower(translate(f.name || '.' || l.name, 'éëüí''', 'eeui')) || i || '@' || ${pick(DOMAINS, sql`i / 7`)},
           lower(translate(f.name || '.' || l.name, 'éëüí''', 'eeui')) || i,
           CASE WHEN i % 50 = 0 THEN NULL ELSE ${options.passwordHash}::text END,
           f.name, l.name, '+1555' || lpad(i::text, 7, '0'),
           ${pick(LOCALES, i)}, ${pick(TIMEZONES, i)},
           CASE WHEN i % 50 = 0 THEN 'invited' WHEN i % 97 = 0 THEN 'suspended' ELSE 'active' END,
           i % 50 <> 0, CASE WHEN i % 50 <> 0 THEN at + interval '1 hour' END,
           CASE WHEN i % 50 <> 0 THEN now() - make_interval(secs => ((i * 104729) % 2592000)::double precision) END,
           jsonb_build_object('department', ${pick(DEPARTMENTS, sql`i / 3`)}, 'employee_id', 'E' || lpad(i::text, 6, '0')),
           at, at
    FROM generate_series(1, ${users}::int) i,
         LATERAL (SELECT ${pick(FIRST_NAMES, i)} AS name) f,
         LATERAL (SELECT ${pick(LAST_NAMES, sql`i / ${FIRST_NAMES.length}`)} AS name) l,
         LATERAL (SELECT now() - interval '2 years' + make_interval(secs => (i::double precision / ${users}) * 60000000) AS at) t`.execute(db);
  await sql`
    INSERT INTO ${table('user_roles')} (user_id, role_id, created_at, updated_at)
    SELECT u.id, r.id, u.created_at, u.created_at FROM ${table('users')} u, ${table('roles')} r WHERE r.name = 'user' AND r.deleted_at IS NULL`.execute(db);
  // Records point at users by position: the users' ids in one array, picked by index.
  const people = sql`(SELECT array_agg(id ORDER BY created_at, id) AS ids, count(*)::int AS n FROM ${table('users')}) u`;
  const someone = (index: RawBuilder<unknown>) => sql`u.ids[1 + (${index}) % u.n]`;
  const title = sql`${pick(TITLE_OPENINGS, i)} || ' ' || ${pick(TOPICS, sql`i / ${TITLE_OPENINGS.length}`)}`;
  const text = sql`${pick(OPENERS, i)} || ' ' || ${pick(MIDDLES, sql`i / 3`)} || CASE WHEN i % 4 <> 0 THEN ' ' || ${pick(MIDDLES, sql`i / 11 + 1`)} ELSE '' END || ' ' || ${pick(CLOSERS, sql`i / 5`)}`;
  const when = sql`LATERAL (SELECT now() - make_interval(secs => ((i * 7919) % 63072000)::double precision) AS at) t`;
  const notes = Math.round(records * 0.6);
  await sql`
    INSERT INTO ${table('notes')} (notable_type, notable_id, title, content, priority, is_pinned, assigned_to, created_by, created_at, updated_at)
    SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 'users' END, CASE WHEN i % 3 = 0 THEN NULL ELSE ${someone(sql`i * 13`)} END,
           ${title}, ${text}, ${pick(['low', 'normal', 'normal', 'high', 'urgent'], i)}, i % 17 = 0,
           CASE WHEN i % 4 = 0 THEN NULL ELSE ${someone(sql`i * 7`)} END, ${someone(i)}, at, at + make_interval(mins => i % 600)
    FROM ${people}, generate_series(1, ${notes}::int) i, ${when}`.execute(db);
  await sql`
    INSERT INTO ${table('tasks')} (taskable_type, taskable_id, title, description, status, priority, due_at, completed_at, assigned_to, created_by, created_at, updated_at)
    SELECT CASE WHEN i % 2 = 0 THEN NULL ELSE 'users' END, CASE WHEN i % 2 = 0 THEN NULL ELSE ${someone(sql`i * 17`)} END,
           ${title}, CASE WHEN i % 5 = 0 THEN NULL ELSE ${text} END, s.status, ${pick(['low', 'normal', 'normal', 'high', 'urgent'], sql`i / 2`)},
           at + make_interval(days => 1 + i % 30), CASE WHEN s.status = 'done' THEN at + make_interval(days => i % 20, hours => i % 24) END,
           ${someone(sql`i * 7`)}, ${someone(i)}, at, at
    FROM ${people}, generate_series(1, ${records - notes}::int) i, ${when},
         LATERAL (SELECT ${pick(['todo', 'in_progress', 'done', 'done', 'cancelled'], i)} AS status) s`.execute(db);
  for (const name of await tablesOf(db, schema)) await sql`VACUUM (ANALYZE) ${table(name)}`.execute(db);
  return { id, slug, schema, users, records, seconds: (performance.now() - t) / 1000 };
}

/** The schema's tables, by name. */
async function tablesOf(db: Db, schema: string): Promise<string[]> {
  const rows = await sql<{ name: string }>`SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'p') ORDER BY 1`.execute(db);
  return rows.rows.map((r) => r.name);
}

/** The tables an export holds (src/tenancy/archive.ts leaves NOT_ARCHIVED out), by name. */
export async function archivedTables(db: Db, schema: string): Promise<string[]> {
  return (await tablesOf(db, schema)).filter((t) => !NOT_ARCHIVED.includes(t));
}

export interface CopyRun {
  readonly rows: number;
  readonly bytes: number;
  readonly seconds: number;
}

/**
 * Reads the first entry of a gzip tar stream fed to it chunk by chunk: the export writes
 * manifest.json first. Only the start of the stream is decompressed, so the harness spends
 * next to no CPU beside the service while it reads.
 */
function manifestReader(): { write(chunk: Buffer): void; end(): Promise<Manifest> } {
  const gunzip = createGunzip();
  let out = Buffer.alloc(0);
  let settled = false;
  const manifest = new Promise<Manifest>((resolve, reject) => {
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      gunzip.close();
      fn();
    };
    gunzip.on('data', (chunk: Buffer) => {
      if (settled) return;
      out = Buffer.concat([out, chunk]);
      if (out.length < 512) return;
      const field = (from: number, to: number) => out.subarray(from, to).toString('latin1').replace(/\0[\s\S]*$/, '').trim();
      const size = parseInt(field(124, 136), 8);
      if (field(0, 100) !== 'manifest.json' || !Number.isInteger(size)) return settle(() => reject(new Error(`export: the archive starts with ${JSON.stringify(field(0, 100))}, not manifest.json`)));
      if (out.length >= 512 + size) settle(() => resolve(JSON.parse(out.subarray(512, 512 + size).toString('utf8')) as Manifest));
    });
    gunzip.on('error', (error) => settle(() => reject(error)));
    gunzip.on('end', () => settle(() => reject(new Error('export: the archive ended before its manifest'))));
  });
  manifest.catch(() => undefined);
  return {
    write: (chunk) => {
      if (!settled) gunzip.write(chunk);
    },
    end: () => {
      if (!settled) gunzip.end();
      return manifest;
    },
  };
}

/** `GET /api/v1/tenants/{slug}/export` read to its end: the time from the request to the last byte, the bytes, and the manifest's rows. */
export function exportOverHttp(base: string, slug: string, headers: Record<string, string>): Promise<CopyRun & { manifest: Manifest }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const request = http.get(`${base}/api/v1/tenants/${slug}/export`, { headers }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => reject(new Error(`export: ${res.statusCode} ${body.slice(0, 500)}`)));
        return;
      }
      const manifest = manifestReader();
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        manifest.write(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        const seconds = (performance.now() - t) / 1000;
        manifest.end().then((m) => resolve({ rows: Object.values(m.tables).reduce((sum, table) => sum + table.rows, 0), bytes, seconds, manifest: m }), reject);
      });
    });
    request.on('error', reject);
  });
}

/**
 * The export's floor: for each table in turn, on one connection, `COPY (SELECT
 * row_to_json(t)::text ...) TO STDOUT` (pg-copy-streams) into a gzip stream whose output is
 * counted and dropped. What the export must do at least, without its snapshot, ordering,
 * files, hashes, tar or HTTP.
 */
export async function floorExportCopy(db: Db, schema: string, tables: readonly string[]): Promise<CopyRun> {
  const client = await poolOf(db).connect();
  try {
    const t = performance.now();
    let rows = 0;
    let bytes = 0;
    for (const table of tables) {
      // What the export reads of the table: its stored columns (generated ones left out).
      const copy = client.query(copyTo(`COPY (SELECT row_to_json(t)::text FROM ${await storedRows(client, schema, table)} t) TO STDOUT`));
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          done();
        },
      });
      await pipeline(copy, createGzip(), sink);
      rows += copy.rowCount;
    }
    return { rows, bytes, seconds: (performance.now() - t) / 1000 };
  } finally {
    client.release();
  }
}

/**
 * `POST /api/v1/tenants/{slug}/fork` into `forkSlug`, timed from the request to its 201; the
 * rows the fork then holds (counted before it goes); then `DELETE ...?backup=false`, timed too.
 */
export async function forkOverHttp(db: Db, base: string, slug: string, forkSlug: string, headers: Record<string, string>): Promise<{ rows: number; seconds: number; delete_seconds: number }> {
  const t = performance.now();
  const res = await fetch(`${base}/api/v1/tenants/${slug}/fork`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ slug: forkSlug }) });
  const seconds = (performance.now() - t) / 1000;
  if (res.status !== 201) throw new Error(`fork: ${res.status} ${await res.text()}`);
  const fork = (await res.json()) as { id: string; schema_name: string };
  let rows = 0;
  for (const name of await tablesOf(db, fork.schema_name)) rows += Number((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id(fork.schema_name, name)}`.execute(db)).rows[0]!.n);
  const d = performance.now();
  const removed = await fetch(`${base}/api/v1/tenants/${fork.id}?backup=false`, { method: 'DELETE', headers });
  if (removed.status !== 200) throw new Error(`delete fork: ${removed.status} ${await removed.text()}`);
  return { rows, seconds, delete_seconds: (performance.now() - d) / 1000 };
}
