import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, gzipSync } from 'node:zlib';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import tar from 'tar-stream';
import { DomainError, text } from '../errors.js';
import type { FileStorage } from '../records/storage.js';

/** Archive format of SPEC §13. */
export const ARCHIVE_FORMAT = 'system-service-tenant';
export const ARCHIVE_FORMAT_VERSION = 1;

/**
 * Tables an archive leaves out: sessions (an archive signs nobody in; users sign in with their
 * passwords), the audit chain's head (it follows the audit rows) and what is in flight rather than data (the outbox and its deliveries, realtime
 * tickets, idempotency records, reset and verification links, the OpenID provider's sessions and tokens, and its signing keys: a restored or forked tenant makes a new key). An archive holding one is refused. MFA step-up tokens and passkey challenges stay out too.
 */
export const NOT_ARCHIVED: readonly string[] = ['audit_chain', 'user_sessions', 'outbox_events', 'webhook_deliveries', 'realtime_tickets', 'idempotency_keys', 'password_reset_tokens', 'email_verification_tokens', 'oidc_payloads', 'oidc_signing_keys', 'mfa_challenges', 'mfa_passkey_challenges'];

export interface Manifest {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly format_version: number;
  readonly schema_version: number;
  readonly tenant: { readonly slug: string; readonly name: string; readonly schema: string };
  readonly created_at: string;
  /** Channel, webhook and TOTP secrets stay encrypted as stored: the ids of the keys that encrypted them (CHANNEL_SECRETS_KEY / _PREVIOUS_KEYS). */
  readonly secrets_key_ids: readonly string[];
  readonly tables: Record<string, { readonly rows: number; readonly sha256: string }>;
  /** Attachment bytes, by SHA-256. */
  readonly attachments: Record<string, { readonly size_bytes: number }>;
}

/** A table's columns that take values (not generated), in order. */
export async function insertableColumns(db: Kysely<never>, schema: string, table: string): Promise<string[]> {
  const rows = await sql<{ name: string }>`
    SELECT a.attname AS name FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND c.relname = ${table} AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    ORDER BY a.attnum`.execute(db);
  return rows.rows.map((r) => r.name);
}

/**
 * What an export reads of a table: the table itself, or (when it has generated columns, such as
 * search vectors, which an import computes again) a select of its other columns.
 */
export async function storedRows(client: pg.PoolClient, schema: string, table: string): Promise<string> {
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const r = await client.query<{ name: string; generated: boolean }>(
    `SELECT attname AS name, attgenerated <> '' AS generated FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [qualified],
  );
  if (!r.rows.some((c) => c.generated)) return qualified;
  return `(SELECT ${r.rows.filter((c) => !c.generated).map((c) => quoteIdent(c.name)).join(', ')} FROM ${qualified})`;
}

/**
 * The schema's tables in an order that puts every table after those its foreign keys point
 * to (within the schema), so that rows load parents first.
 */
export async function loadOrder(db: Kysely<never>, schema: string): Promise<string[]> {
  const tables = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'p') ORDER BY c.relname`.execute(db);
  const edges = await sql<{ child: string; parent: string }>`
    SELECT ch.relname AS child, pa.relname AS parent FROM pg_catalog.pg_constraint k
    JOIN pg_catalog.pg_class ch ON ch.oid = k.conrelid JOIN pg_catalog.pg_class pa ON pa.oid = k.confrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace
    WHERE n.nspname = ${schema} AND k.contype = 'f' AND k.conrelid <> k.confrelid`.execute(db);
  const parents = new Map<string, Set<string>>(tables.rows.map((t) => [t.name, new Set()]));
  for (const e of edges.rows) parents.get(e.child)?.add(e.parent);
  const ordered: string[] = [];
  const placed = new Set<string>();
  const visit = (table: string, path: Set<string>) => {
    if (placed.has(table) || path.has(table)) return;
    path.add(table);
    for (const parent of parents.get(table) ?? []) visit(parent, path);
    placed.add(table);
    ordered.push(table);
  };
  for (const t of parents.keys()) visit(t, new Set());
  return ordered;
}

/** Counts lines and hashes what passes through. */
export class Meter extends Transform {
  readonly hash = createHash('sha256');
  lines = 0;
  bytes = 0;
  /** The longest line so far, in bytes. */
  longest = 0;
  private lineStart = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) {
      this.lines++;
      this.longest = Math.max(this.longest, this.bytes + i - this.lineStart);
      this.lineStart = this.bytes + i + 1;
    }
    this.bytes += chunk.length;
    this.longest = Math.max(this.longest, this.bytes - this.lineStart);
    done(null, chunk);
  }
}

/** The longest row an import reads (a line of a table file), and the most entries an archive may hold. */
const MAX_ROW_BYTES = 64 * 1024 * 1024;
const MAX_ENTRIES = 1_000_000;

export interface ExportProgress {
  readonly table: string;
  readonly rows: number;
  readonly bytes: number;
}

/** An export written to a temporary directory: its manifest, and the archive as a stream (the directory goes when it ends). */
export interface PreparedExport {
  readonly manifest: Manifest;
  /** The gzip tar archive; read it once. */
  stream(): Readable;
  /** Removes the temporary files (when the stream is never read). */
  discard(): Promise<void>;
}

const { encode: tarHeader } = createRequire(import.meta.url)('tar-stream/headers.js') as { encode(header: object): Buffer };

/** One tar entry (header, content, padding to 512 bytes), without the archive's end. */
function tarEntry(name: string, content: Buffer, mtime: Date): Buffer {
  const header = tarHeader({ name, size: content.length, mode: 0o600, mtime, type: 'file', uid: 0, gid: 0 });
  return Buffer.concat([header, content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
}

/**
 * A gzip tar written to a file while entries are added: each table is packed (and compressed,
 * on the thread pool) as soon as its file is complete, while PostgreSQL writes the next one.
 */
class ArchiveWriter {
  private readonly pack = tar.pack();
  private readonly written: Promise<void>;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    file: string,
    private readonly mtime: Date,
  ) {
    this.written = pipeline(this.pack, createGzip(), createWriteStream(file, { mode: 0o600 }));
    this.written.catch(() => undefined); // awaited in finish()
  }

  /** Packs `file` as `name` after the entries before it, then removes it. */
  addFile(name: string, file: string): void {
    this.queue = this.queue.then(async () => {
      const size = (await stat(file)).size;
      await new Promise<void>((resolve, reject) => {
        const sink = this.pack.entry({ name, size, mode: 0o600, mtime: this.mtime }, (error) => (error ? reject(error) : resolve()));
        createReadStream(file).on('error', reject).pipe(sink);
      });
      await rm(file);
    });
  }

  async finish(): Promise<void> {
    await this.queue;
    this.pack.finalize();
    await this.written;
  }

  async abort(): Promise<void> {
    await this.queue.catch(() => undefined);
    this.pack.destroy();
    await this.written.catch(() => undefined);
  }
}

/**
 * One tenant's archive from one snapshot (a REPEATABLE READ, READ ONLY transaction): each
 * table through `COPY (SELECT row_to_json ...) TO STDOUT`, one row per line, to a file through
 * a hash, packed into the archive file as soon as it is complete; then the attachment bytes,
 * then manifest.json. Memory holds buffers, never a table.
 */
export async function prepareExport(
  pool: pg.Pool,
  storage: FileStorage,
  tenant: { slug: string; name: string; schema: string },
  onProgress?: (p: ExportProgress) => void,
): Promise<PreparedExport> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'system-service-export-'));
  const created = new Date();
  const archive = new ArchiveWriter(path.join(dir, 'archive.tar.gz'), created);
  try {
    const client = await pool.connect();
    const tables: Record<string, { rows: number; sha256: string }> = {};
    let version = 0;
    let files: { sha: string; key: string }[] = [];
    const keys = new Set<string>();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const schema = tenant.schema;
      version = Number((await client.query<{ version: number }>('SELECT version FROM shared.tenant_schemas WHERE schema_name = $1', [schema])).rows[0]?.version ?? 0);
      const names = (await client.query<{ name: string }>(`SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, [schema])).rows.map((r) => r.name);
      for (const table of names.filter((t) => !NOT_ARCHIVED.includes(t))) {
        // CSV with delimiter and quote characters a JSON text never holds raw: each line is the JSON itself, unescaped.
        const copy = client.query(copyTo(`COPY (SELECT row_to_json(t)::text FROM ${await storedRows(client, schema, table)} t) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')`));
        const meter = new Meter();
        const file = path.join(dir, `${table}.ndjson`);
        await pipeline(copy, meter, createWriteStream(file, { mode: 0o600 }));
        tables[table] = { rows: meter.lines, sha256: meter.hash.digest('hex') };
        archive.addFile(`tables/${table}.ndjson`, file);
        onProgress?.({ table, rows: meter.lines, bytes: meter.bytes });
      }
      if (names.includes('attachments')) {
        files = (await client.query<{ sha: string; key: string }>(`SELECT checksum_sha256 AS sha, storage_key AS key FROM ${quoteIdent(schema)}.attachments WHERE purged_at IS NULL`)).rows;
      }
      for (const table of ['channel_configs', 'webhooks', 'mfa_totp']) {
        if (!names.includes(table)) continue;
        const column = table === 'channel_configs' ? 'encrypted_secrets' : 'encrypted_secret';
        const ids = await client.query<{ id: string }>(`SELECT DISTINCT split_part(${column}, '.', 2) AS id FROM ${quoteIdent(schema)}.${table} WHERE ${column} IS NOT NULL`);
        for (const r of ids.rows) keys.add(r.id);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    // Attachment bytes do not change under a key (a new revision is a new row): copied after the snapshot.
    const attachments: Record<string, { size_bytes: number }> = {};
    for (const stored of files) {
      if (attachments[stored.sha]) continue;
      const meter = new Meter();
      const file = path.join(dir, stored.sha);
      await pipeline(await storage.get(stored.key), meter, createWriteStream(file, { mode: 0o600 }));
      if (meter.hash.digest('hex') !== stored.sha) throw new Error(`attachment ${stored.key}: its bytes do not match their recorded SHA-256`);
      attachments[stored.sha] = { size_bytes: meter.bytes };
      archive.addFile(`attachments/${stored.sha}`, file);
      onProgress?.({ table: 'attachments', rows: Object.keys(attachments).length, bytes: meter.bytes });
    }
    const manifest: Manifest = {
      format: ARCHIVE_FORMAT,
      format_version: ARCHIVE_FORMAT_VERSION,
      schema_version: version,
      tenant: { slug: tenant.slug, name: tenant.name, schema: tenant.schema },
      created_at: created.toISOString(),
      secrets_key_ids: [...keys].sort(),
      tables,
      attachments,
    };
    await archive.finish();
    // manifest.json comes first, as a gzip member of its own before the tables' (a gzip stream
    // of several members reads as one): a reader knows what follows before it reads it.
    const head = gzipSync(tarEntry('manifest.json', Buffer.from(JSON.stringify(manifest, null, 2)), created));
    const discard = () => rm(dir, { recursive: true, force: true });
    return {
      manifest,
      discard,
      stream: () => {
        const out = new PassThrough();
        out.write(head);
        createReadStream(path.join(dir, 'archive.tar.gz'))
          .on('error', (error) => out.destroy(error))
          .on('close', () => void discard())
          .pipe(out);
        return out;
      },
    };
  } catch (error) {
    await archive.abort();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

const invalid = (problem: string) => new DomainError('tenant.archive_invalid', text('detail.archive_invalid', { problem }));
const TABLE_ENTRY = /^tables\/([a-z][a-z0-9_]{0,62})\.ndjson$/;
const ATTACHMENT_ENTRY = /^attachments\/([0-9a-f]{64})$/;

/** An archive unpacked into a temporary directory and checked whole: every file's SHA-256 and row count against the manifest. */
export interface UnpackedArchive {
  readonly manifest: Manifest;
  readonly dir: string;
  tableFile(table: string): string;
  attachmentFile(sha: string): string;
  discard(): Promise<void>;
}

/**
 * Unpacks a gzip tar archive to disk (never into memory), hashing each file as it is written,
 * and checks it before anything is imported: the manifest's format and version, and every table
 * and attachment it lists, present with its SHA-256 (and rows). `maxBytes` bounds what is
 * unpacked. A broken gzip or tar, an unknown entry, a missing or altered file: 400.
 */
export async function unpackArchive(source: Readable, latestSchemaVersion: number, maxBytes: number): Promise<UnpackedArchive> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'system-service-import-'));
  const discard = () => rm(dir, { recursive: true, force: true });
  try {
    await mkdir(path.join(dir, 'tables'));
    await mkdir(path.join(dir, 'attachments'));
    const seen = new Map<string, { sha256: string; lines: number; longest: number }>();
    let total = 0;
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const name = header.name;
      const fail = (error: Error) => {
        stream.resume();
        next(error);
      };
      // A header counts as its 512 bytes: an archive of empty entries is bounded too.
      total += 512;
      if (seen.size >= MAX_ENTRIES) return fail(invalid(`more than ${MAX_ENTRIES} entries`));
      if (total > maxBytes) return fail(new DomainError('request.too_large', text('detail.archive_too_large', { limit: maxBytes })));
      if (header.type !== 'file') return fail(invalid(`entry ${JSON.stringify(name)} is not a file`));
      const file = name === 'manifest.json' ? path.join(dir, 'manifest.json') : TABLE_ENTRY.test(name) || ATTACHMENT_ENTRY.test(name) ? path.join(dir, name) : undefined;
      if (!file) return fail(invalid(`unexpected entry ${JSON.stringify(name.slice(0, 200))}`));
      if (seen.has(name)) return fail(invalid(`entry ${name} appears twice`));
      const meter = new Meter();
      const limit = new Transform({
        transform(chunk: Buffer, _enc, done) {
          total += chunk.length;
          if (total > maxBytes) return done(new DomainError('request.too_large', text('detail.archive_too_large', { limit: maxBytes })));
          done(null, chunk);
        },
      });
      pipeline(stream, limit, meter, createWriteStream(file, { mode: 0o600 })).then(
        () => {
          seen.set(name, { sha256: meter.hash.digest('hex'), lines: meter.lines, longest: meter.longest });
          next();
        },
        (error: Error) => next(error),
      );
    });
    try {
      await pipeline(source, createGunzip(), extract);
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw invalid((error as Error).message);
    }
    if (!seen.has('manifest.json')) throw invalid('manifest.json is missing');
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    } catch {
      throw invalid('manifest.json is not JSON');
    }
    checkManifest(manifest, latestSchemaVersion);
    for (const [table, expected] of Object.entries(manifest.tables)) {
      const got = seen.get(`tables/${table}.ndjson`);
      if (!got) throw invalid(`tables/${table}.ndjson is missing`);
      if (got.sha256 !== expected.sha256) throw invalid(`tables/${table}.ndjson does not match its SHA-256 in the manifest`);
      if (got.lines !== expected.rows) throw invalid(`tables/${table}.ndjson holds ${got.lines} rows, the manifest says ${expected.rows}`);
      if (got.longest > MAX_ROW_BYTES) throw invalid(`tables/${table}.ndjson holds a row longer than ${MAX_ROW_BYTES} bytes`);
    }
    for (const sha of Object.keys(manifest.attachments)) {
      const got = seen.get(`attachments/${sha}`);
      if (!got) throw invalid(`attachments/${sha} is missing`);
      if (got.sha256 !== sha) throw invalid(`attachments/${sha} does not match its SHA-256`);
    }
    for (const name of seen.keys()) {
      const table = TABLE_ENTRY.exec(name)?.[1];
      const sha = ATTACHMENT_ENTRY.exec(name)?.[1];
      if ((table && !manifest.tables[table]) || (sha && !manifest.attachments[sha])) throw invalid(`${name} is not in the manifest`);
    }
    return { manifest, dir, tableFile: (t) => path.join(dir, 'tables', `${t}.ndjson`), attachmentFile: (s) => path.join(dir, 'attachments', s), discard };
  } catch (error) {
    source.resume();
    await discard();
    throw error;
  }
}

function checkManifest(m: Manifest, latest: number): void {
  const object = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!object(m) || m.format !== ARCHIVE_FORMAT) throw invalid(`manifest.json: format must be "${ARCHIVE_FORMAT}"`);
  if (m.format_version !== ARCHIVE_FORMAT_VERSION) throw invalid(`manifest.json: format_version ${JSON.stringify(m.format_version)} is not ${ARCHIVE_FORMAT_VERSION}`);
  if (!Number.isInteger(m.schema_version) || m.schema_version < 1) throw invalid('manifest.json: schema_version must be a positive integer');
  if (m.schema_version > latest) throw invalid(`manifest.json: schema version ${m.schema_version} is newer than this service's ${latest}; import it with a newer release`);
  if (!object(m.tenant) || typeof m.tenant.schema !== 'string' || typeof m.tenant.slug !== 'string') throw invalid('manifest.json: tenant must name its slug and schema');
  if (!object(m.tables) || !Object.keys(m.tables).every((t) => /^[a-z][a-z0-9_]{0,62}$/.test(t))) throw invalid('manifest.json: tables must map table names to {rows, sha256}');
  for (const v of Object.values(m.tables)) if (!object(v) || !Number.isInteger(v.rows) || typeof v.sha256 !== 'string') throw invalid('manifest.json: each table needs rows and sha256');
  const inFlight = Object.keys(m.tables).filter((t) => NOT_ARCHIVED.includes(t));
  if (inFlight.length) throw invalid(`manifest.json: an archive does not carry ${inFlight.join(', ')}`);
  if (!object(m.attachments)) throw invalid('manifest.json: attachments must map SHA-256 to sizes');
  if (!Array.isArray(m.secrets_key_ids)) throw invalid('manifest.json: secrets_key_ids must be a list');
}

/**
 * Runs `load` with the schema's foreign keys from a table to itself (a team's parent team, an
 * attachment's earlier version) dropped, then adds them back, which checks every row at once:
 * rows that point within their table load whatever their order and batches.
 */
export async function withoutSelfReferences(db: Kysely<never>, schema: string, load: () => Promise<void>): Promise<void> {
  const keys = await sql<{ table: string; name: string; definition: string }>`
    SELECT c.relname AS table, k.conname AS name, pg_catalog.pg_get_constraintdef(k.oid) AS definition FROM pg_catalog.pg_constraint k
    JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND k.contype = 'f' AND k.conrelid = k.confrelid`.execute(db);
  for (const k of keys.rows) await sql`ALTER TABLE ${sql.id(schema, k.table)} DROP CONSTRAINT ${sql.id(k.name)}`.execute(db);
  await load();
  for (const k of keys.rows) {
    await sql`ALTER TABLE ${sql.id(schema, k.table)} ADD CONSTRAINT ${sql.id(k.name)} ${sql.raw(k.definition)}`.execute(db).catch((error: unknown) => {
      throw invalid(`tables/${k.table}.ndjson: ${(error as Error).message}`);
    });
  }
}

/**
 * Loads a table's NDJSON file into `schema.table` in batches (one INSERT per batch, rows typed
 * by the table). Rows the table refuses (not an object, a wrong type, a broken reference or
 * constraint) make the archive invalid: 400 naming the table.
 */
export async function loadTable(db: Kysely<never>, schema: string, table: string, file: string, columns: readonly string[], onRows?: (n: number) => void): Promise<number> {
  const list = sql.join(columns.map((c) => sql.id(c)));
  let batch: string[] = [];
  let bytes = 0;
  let rows = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    if (!batch.every((line) => line.startsWith('{'))) throw invalid(`tables/${table}.ndjson holds a row that is not a JSON object`);
    await sql`INSERT INTO ${sql.id(schema, table)} (${list}) OVERRIDING SYSTEM VALUE
              SELECT ${list} FROM jsonb_populate_recordset(NULL::${sql.id(schema, table)}, ${`[${batch.join(',')}]`}::jsonb)`
      .execute(db)
      .catch((error: unknown) => {
        const pg = error as { code?: string; message?: string };
        // Data errors (22) and broken constraints (23) come from the rows; anything else is ours.
        if (typeof pg.code === 'string' && /^2[23]/.test(pg.code)) throw invalid(`tables/${table}.ndjson: ${pg.message ?? pg.code}`);
        throw error;
      });
    rows += batch.length;
    onRows?.(rows);
    batch = [];
    bytes = 0;
  };
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.length === 0) continue;
    batch.push(line);
    bytes += line.length;
    if (batch.length >= 5_000 || bytes >= 8 * 1024 * 1024) await flush();
  }
  await flush();
  return rows;
}

/** Moves every identity sequence of the schema past the largest value its column holds. */
export async function resetIdentities(db: Kysely<never>, schema: string): Promise<void> {
  const columns = await sql<{ table: string; column: string }>`
    SELECT c.relname AS table, a.attname AS column FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND a.attidentity <> '' AND NOT a.attisdropped`.execute(db);
  for (const { table, column } of columns.rows) {
    await sql`SELECT setval(pg_get_serial_sequence(${`${quoteIdent(schema)}.${quoteIdent(table)}`}, ${column}), COALESCE((SELECT max(${sql.ref(column)}) FROM ${sql.id(schema, table)}), 0) + 1, false)`.execute(db);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
