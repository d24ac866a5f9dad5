import { createHash } from 'node:crypto';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { poolAcquire } from '../observability/metrics.js';
import type { PlatformDatabase } from './platform-types.js';
import type { TenantDatabase } from './types.js';

// Dates stay 'YYYY-MM-DD' strings; timestamptz parse to Date (pg's default).
const DATE_OID = 1082;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === DATE_OID) return (value: string) => value;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
  },
} as pg.CustomTypesConfig;

export interface DatabaseOptions {
  readonly url: string;
  readonly max: number;
  readonly connectionTimeoutMs: number;
  readonly applicationName?: string;
  readonly onPoolError?: (error: Error) => void;
  /**
   * How many named prepared statements a connection keeps (0: none, every statement goes out
   * unnamed). Only the statements registered with `prepared()` are named.
   */
  readonly preparedStatements?: number;
  /**
   * Told once per process that the server lost or mixed up named statements (a pooler in front
   * that does not carry them: see PreparingPool). Default: a process warning on stderr.
   */
  readonly onWarning?: (message: string) => void;
  /**
   * The role each tenant's statements run as (docs/OPERATIONS.md, "Per-tenant roles"): every
   * statement through a tenant handle first sets it for its transaction, so a statement that
   * names another tenant's schema fails inside PostgreSQL. Unset: statements run as the
   * connection's role.
   */
  readonly tenantRole?: (schema: string) => string;
}

export interface Database {
  /** Root handle: platform tables through `withSchema('shared')`; tenants through `tenantDb`. */
  readonly db: Kysely<PlatformDatabase>;
  readonly pool: pg.Pool;
  /** Statements run again unnamed after the server refused their name (26000, 42P05, 0A000). */
  readonly statementRetries: number;
  close(): Promise<void>;
}

/** The one pool every tenant shares: connections are bounded by `max`, whatever the tenant count. */
export function createDatabase(options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'system-service',
    types: typeParsers,
  });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', (error) => options.onPoolError?.(error));
  const preparing = new PreparingPool(pool, options.preparedStatements ?? 0, options.onWarning ?? ((message) => process.emitWarning(message, 'DatabaseWarning')));
  const db = new Kysely<PlatformDatabase>({ dialect: new PostgresDialect({ pool: preparing.forKysely() }) });
  pools.set(db, { preparing });
  rawPools.set(db, pool);
  if (options.tenantRole) tenantRoles.set(db, options.tenantRole);
  let closing: Promise<void> | undefined;
  return {
    db,
    pool,
    get statementRetries() {
      return preparing.retries;
    },
    close: () => (closing ??= db.destroy()),
  };
}

/** The only way to build a tenant query: every table it names is qualified with the schema. */
export function tenantDb(db: Kysely<PlatformDatabase>, schemaName: string): Kysely<TenantDatabase> {
  // A handle per schema is made once and kept (a new one costs a Kysely instance, a plugin and
  // its transformer: ~3% of a one-row read); bounded, the set starts afresh past the limit.
  // A transaction's handles live as long as it does: made each time, not kept.
  if (db.isTransaction) return (db as unknown as Kysely<TenantDatabase>).withSchema(schemaName);
  let handles = tenantHandles.get(db);
  if (!handles) tenantHandles.set(db, (handles = new Map()));
  const known = handles.get(schemaName);
  if (known) return known;
  const pool = pools.get(db);
  const role = tenantRoles.get(db)?.(schemaName);
  // With per-tenant roles a tenant handle has connections of its own kind: they set its role.
  const base = pool && role ? new Kysely<TenantDatabase>({ dialect: new PostgresDialect({ pool: pool.preparing.forKysely(role) }) }) : (db as unknown as Kysely<TenantDatabase>);
  const tenant = base.withSchema(schemaName);
  if (pool) pools.set(tenant, { preparing: pool.preparing, role });
  if (handles.size >= TENANT_HANDLES_MAX) handles.clear();
  handles.set(schemaName, tenant);
  return tenant;
}

const TENANT_HANDLES_MAX = 2_000;
const rawPools = new WeakMap<object, pg.Pool>();

/** The node-postgres pool under a root handle (COPY streams need a client of their own). */
export function poolOf(db: Kysely<PlatformDatabase>): pg.Pool {
  const pool = rawPools.get(db);
  if (!pool) throw new Error('poolOf: not a root handle made by createDatabase');
  return pool;
}
const tenantRoles = new WeakMap<object, (schema: string) => string>();

/** The per-tenant role naming a root handle was made with (DatabaseOptions.tenantRole), if any. */
export function tenantRoleOf(db: Kysely<PlatformDatabase>): ((schema: string) => string) | undefined {
  return tenantRoles.get(db);
}
const tenantHandles = new WeakMap<object, Map<string, Kysely<TenantDatabase>>>();

export function sharedDb(db: Kysely<PlatformDatabase>): Kysely<PlatformDatabase> {
  return db.withSchema('shared');
}

/**
 * Statement texts to run as named prepared statements, and their names. PostgreSQL then parses
 * and plans them once per connection (a generic plan after five runs) instead of on every
 * execution: for a one-row read that is most of PostgreSQL's work. Only statements built once
 * and run many times belong here (StatementCache registers its own). Bounded: past the limit
 * the registry starts afresh (the names stay the same).
 */
const preparedNames = new Map<string, string>();
const REGISTRY_MAX = 10_000;

/** Marks `text` as a statement to prepare (where the pool prepares statements at all). */
export function prepared(text: string): string {
  let name = preparedNames.get(text);
  if (name === undefined) {
    if (preparedNames.size >= REGISTRY_MAX) preparedNames.clear();
    name = statementName(text);
    preparedNames.set(text, name);
  }
  return name;
}

/**
 * The name of a prepared statement: `ss_` and 128 bits of the SHA-256 of its text (35
 * characters, within PostgreSQL's 63). The same name means the same text in every process, so
 * a pooler that hands one instance's server connection to another (PgBouncer before 1.21, in
 * transaction mode) can at worst lack a statement or hold it already, never run another text
 * under the name. (Names in order of first use, `ss_0`, `ss_1`..., meant another statement in
 * each process, and could run another tenant's query.)
 */
export function statementName(text: string): string {
  return `ss_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
}

/**
 * Closes a named statement on the server with the protocol's Close message (which PgBouncer
 * >= 1.21 follows, unlike SQL DEALLOCATE). Queued on the client like any query.
 */
class CloseStatement implements pg.Submittable {
  constructor(private readonly name: string) {}
  submit(connection: unknown) {
    const wire = connection as { close(msg: { type: 'S'; name: string }): void; sync(): void; parsedStatements: Record<string, string> };
    delete wire.parsedStatements[this.name];
    wire.close({ type: 'S', name: this.name });
    wire.sync();
  }
  handleReadyForQuery() {}
  /** A statement already gone is what was asked for; ReadyForQuery follows. */
  handleError() {}
}

/**
 * The pool with its prepared statements. Registered statements go out named, outside
 * transactions only; each connection keeps its `limit` most recently used ones, the least
 * recently used closed on the server before a new one is prepared. Kysely runs through
 * `forKysely()`; StatementCache runs its statements outside transactions through `run()`,
 * without Kysely's per-query machinery.
 *
 * Behind a pooler that does not carry protocol-level prepared statements (PgBouncer before
 * 1.21, or without `max_prepared_statements`, in transaction mode) each statement may meet
 * another server connection than the last: one that lacks a statement this connection prepared
 * (26000), or holds one this connection has not (42P05). Names come from the text, so neither
 * is ever another statement. Either costs a retry: the statement runs again unnamed on the same
 * connection, which then believes what the server said (it binds to a statement that exists,
 * parses one that does not next time), so the server connections fill up with the statements
 * and the retries die out. A plan outdated by a column type change (0A000) also runs again
 * unnamed, and the connection, its other statements just as outdated, is dropped.
 *
 * Inside a transaction statements go out unnamed: a failed statement aborts the transaction and
 * cannot be retried on it, and behind such a pooler nothing tells whether the server
 * connection the transaction holds has the statement. Only the hot single statements (reads,
 * login, refresh) run outside transactions, and those keep their names.
 */
class PreparingPool {
  private readonly heldBy = new WeakMap<pg.PoolClient, Map<string, true>>();
  /** Connections to drop when released (their statements are stale). */
  private readonly broken = new WeakSet<pg.PoolClient>();
  /** Statements run again after the server refused their name. */
  retries = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly limit: number,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Runs `text` on `client`, named when registered and outside a transaction. With a `role`,
   * outside a transaction: a transaction's first statement sets the role in the same message
   * (`begin; set local role ...`), and a single statement goes out in one pipeline behind
   * `SET LOCAL ROLE` (one round trip either way).
   */
  private async query(client: pg.PoolClient, text: string, values: unknown[] | undefined, role?: string) {
    const idle = client.getTransactionStatus() === 'I';
    if (role !== undefined && idle) {
      if (BEGIN.test(text)) {
        return submit(client, `${text}; ${setRole(role)}`, undefined).catch(async (error: unknown) => {
          // A role that cannot be set (its schema dropped meanwhile) leaves the transaction aborted.
          await submit(client, 'ROLLBACK', undefined).catch(() => this.broken.add(client));
          throw error;
        });
      }
    } else role = undefined;
    const name = this.limit > 0 && idle ? preparedNames.get(text) : undefined;
    const roleNamed = role !== undefined && this.limit > 0;
    let lru: Map<string, boolean> | undefined;
    if (name !== undefined) {
      lru = this.heldBy.get(client);
      if (!lru) this.heldBy.set(client, (lru = new Map()));
      if (lru.delete(name)) lru.set(name, true);
      else {
        if (lru.size >= this.limit) {
          const oldest = lru.keys().next().value as string;
          lru.delete(oldest);
          client.query(new CloseStatement(oldest));
        }
        lru.set(name, true);
      }
    }
    try {
      return await submit(client, text, values, name, role, roleNamed);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if ((name === undefined && !roleNamed) || (code !== '26000' && code !== '42P05' && code !== '0A000')) throw error;
      this.retries++;
      const parsed = (client as unknown as { connection: { parsedStatements: Record<string, string> } }).connection.parsedStatements;
      if (code === '0A000') this.broken.add(client);
      else {
        // The server's word on a name is the truth for the next time (see above); the role
        // statement's name may have been the one (the server does not say which).
        if (code === '42P05') {
          if (name !== undefined) parsed[name] = text;
          if (roleNamed) parsed[SET_ROLE_NAME] = SET_ROLE_PREPARED;
        } else {
          if (name !== undefined) delete parsed[name];
          delete parsed[SET_ROLE_NAME];
          if (name !== undefined) lru?.delete(name);
        }
        if (!warned) {
          warned = true;
          this.warn(MIXED_UP);
        }
      }
      return submit(client, text, values, undefined, role);
    }
  }

  /** Runs `text`, and tells the commit listeners when it was a transaction's COMMIT. */
  private async statement(client: pg.PoolClient, text: string, values: unknown[] | undefined, role?: string) {
    const result = await this.query(client, text, values, role);
    if (text.length === 6 && COMMIT.test(text)) for (const listener of commitListeners) listener();
    return result;
  }

  /** One statement outside any transaction: a connection, the statement, the connection back. */
  async run(text: string, values: unknown[], role?: string): Promise<pg.QueryResult> {
    const client = await this.acquire();
    try {
      return await this.query(client, text, values, role);
    } finally {
      this.release(client);
    }
  }

  /** A pooled connection, the wait for it timed for /metrics. */
  private async acquire(): Promise<pg.PoolClient> {
    const started = performance.now();
    const client = await this.pool.connect();
    poolAcquire.observe((performance.now() - started) / 1000);
    return client;
  }

  private release(client: pg.PoolClient, destroy?: boolean) {
    client.release(destroy || this.broken.has(client) ? true : undefined);
  }

  /** A pool for Kysely; with `role`, every statement outside a transaction runs as that role. */
  forKysely(role?: string): PostgresPool {
    return {
      end: () => this.pool.end(),
      connect: async () => {
        const client = await this.acquire();
        const wrapped = {
          query: async (text: string | pg.Submittable, values?: unknown[]) => (typeof text === 'string' ? this.statement(client, text, values, role) : client.query(text)),
          release: (destroy?: boolean) => this.release(client, destroy),
        };
        return wrapped as unknown as PostgresPoolClient;
      },
    };
  }
}

const COMMIT = /^commit$/i;
const commitListeners: (() => void)[] = [];

/** Calls `listener` after every transaction this process commits (cheap: it runs on each commit). */
export function afterEveryCommit(listener: () => void): () => void {
  commitListeners.push(listener);
  return () => {
    const i = commitListeners.indexOf(listener);
    if (i >= 0) commitListeners.splice(i, 1);
  };
}

/** Whether this process has said that the server mixes named statements up (said once). */
let warned = false;
const MIXED_UP =
  'the database server lacked, or already had, a named prepared statement: a pooler in front of it (PgBouncer older than 1.21, ' +
  'or without max_prepared_statements, in transaction mode) does not carry them. Such statements run again unnamed (correct, ' +
  'one more round trip); use PgBouncer 1.21+ with max_prepared_statements, or DATABASE_PREPARED_STATEMENTS=0 (docs/OPERATIONS.md)';

/**
 * A statement submitted as a `pg.Query` with a callback, named when `name` is given. Given a
 * config object, pg copies it property by property (descriptors and all), and without a
 * callback it chains a second promise to every query; from text it builds a plain config. The
 * name is the Query's own field, read when it is sent.
 */
function submit(client: pg.PoolClient, text: string, values: unknown[] | undefined, name?: string, role?: string, roleNamed = false): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null | undefined, result: unknown) => {
      if (!error) return resolve(result as pg.QueryResult);
      // The stack of the caller, not of the socket read that delivered the error.
      Error.captureStackTrace(error);
      reject(error);
    };
    const query = role === undefined ? new pg.Query(text, values, done) : new AsRole(role, roleNamed, text, values, done);
    if (name !== undefined) (query as unknown as { name: string }).name = name;
    client.query(query as pg.Query);
  });
}

/** A transaction's opening statement, as Kysely sends it. */
const BEGIN = /^(begin|start transaction)\b/i;

const setRole = (role: string) => `SET LOCAL ROLE ${pg.escapeIdentifier(role)}`;
/** The role statement of a pipeline: prepared once per connection (named) where statements may be named, else sent whole. */
const SET_ROLE_NAME = 'ss_set_role';
const SET_ROLE_PREPARED = "SELECT set_config('role', $1, true)";
const setRoleInPipeline = (role: string) => `SELECT set_config('role', ${pg.escapeLiteral(role)}, true)`;

/**
 * A statement sent in one pipeline behind `set_config('role', ..., true)` (Parse, Bind, Execute
 * of each, one Sync): the messages before a Sync are one implicit transaction, so the role holds
 * for the statement and ends with it, at the cost of no extra round trip. (`SET LOCAL` would do
 * the same but warns outside an explicit block.) The answers to it (ParseComplete, its row,
 * CommandComplete) are kept from the statement's own.
 */
const Query = pg.Query as unknown as new (text: string, values: unknown[] | undefined, callback: (error: Error | null | undefined, result: unknown) => void) => WireQuery;
interface WireQuery {
  name?: string;
  queryMode?: string;
  submit(connection: Wire): Error | null;
  handleCommandComplete(message: unknown, connection: Wire): void;
  handleDataRow(message: unknown): void;
}
interface Wire {
  stream: { cork?: () => void; uncork?: () => void };
  parsedStatements: Record<string, string>;
  parse(message: { text: string; name: string; types: never[] }): void;
  bind(message: { portal: string; statement: string; values: string[] }): void;
  execute(message: { portal: string; rows: number }): void;
}
class AsRole extends Query {
  /** Until the SET has answered, the client must not take its ParseComplete for the statement's. */
  private roleSet = false;
  private statementName: string | undefined;

  constructor(
    private readonly role: string,
    /** Whether the role statement may be a named prepared statement (kept on the connection). */
    private readonly roleNamed: boolean,
    text: string,
    values: unknown[] | undefined,
    callback: (error: Error | null | undefined, result: unknown) => void,
  ) {
    super(text, values, callback);
    // Always the extended protocol: a simple Query message would end the pipeline's transaction.
    this.queryMode = 'extended';
  }

  override get name(): string | undefined {
    return this.roleSet || this.sending ? this.statementName : undefined;
  }
  override set name(value: string | undefined) {
    this.statementName = value;
  }
  private sending = false;

  override submit(connection: Wire): Error | null {
    connection.stream.cork?.();
    this.sending = true;
    try {
      if (this.roleNamed) {
        // Parsed (and planned) once per connection, then only bound: pg keeps the names it parsed per connection.
        if (connection.parsedStatements[SET_ROLE_NAME] !== SET_ROLE_PREPARED) {
          connection.parse({ text: SET_ROLE_PREPARED, name: SET_ROLE_NAME, types: [] });
          connection.parsedStatements[SET_ROLE_NAME] = SET_ROLE_PREPARED;
        }
        connection.bind({ portal: '', statement: SET_ROLE_NAME, values: [this.role] });
      } else {
        connection.parse({ text: setRoleInPipeline(this.role), name: '', types: [] });
        connection.bind({ portal: '', statement: '', values: [] });
      }
      connection.execute({ portal: '', rows: 0 });
      return super.submit(connection);
    } finally {
      this.sending = false;
      connection.stream.uncork?.();
    }
  }

  override handleDataRow(message: unknown): void {
    if (this.roleSet) super.handleDataRow(message);
  }

  override handleCommandComplete(message: unknown, connection: Wire): void {
    if (!this.roleSet) this.roleSet = true;
    else super.handleCommandComplete(message, connection);
  }
}

/** The pool behind each root handle and the tenant handles made from it, with the tenant's role (see tenantDb). */
const pools = new WeakMap<object, { preparing: PreparingPool; role?: string }>();

/**
 * Runs a statement straight on the pool behind `db` (a handle from createDatabase or tenantDb,
 * outside a transaction), or undefined when `db` has none (a transaction, a foreign handle).
 */
export function runDirect(db: Kysely<never>, text: string, values: unknown[]): Promise<pg.QueryResult> | undefined {
  if (db.isTransaction) return undefined;
  const pool = pools.get(db);
  return pool?.preparing.run(text, values, pool.role);
}
