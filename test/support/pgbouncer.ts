import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';

/**
 * A PgBouncer for the suite: Debian's `pgbouncer` (1.18 on Debian 12, which does not carry
 * protocol-level prepared statements), in transaction mode, in front of the suite's PostgreSQL.
 * Started as a child process on a free port; PgBouncer refuses to run as root, so under root it
 * runs as the `postgres` user the embedded database runs as (`nobody` when there is none).
 */
export interface PgBouncer {
  /** `serverUrl` with PgBouncer's host and port: the same role, password and database. */
  readonly url: string;
  stop(): Promise<void>;
}

/** The `pgbouncer` binary: on PATH, or where Debian puts it (/usr/sbin is not on a user's PATH). */
export function findPgBouncer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const file = path.join(dir, 'pgbouncer');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function idsOf(user: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** A value in PgBouncer's auth_file: double-quoted, a quote doubled. */
const quoted = (value: string) => `"${value.replace(/"/g, '""')}"`;

/**
 * Starts PgBouncer in front of the server of `serverUrl` (any database on it, as the URL's role)
 * with `poolSize` server connections per database and role; resolves once it accepts
 * connections. Its other settings are PgBouncer's defaults.
 */
export async function startPgBouncer(binary: string, serverUrl: string, options: { poolSize?: number } = {}): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'system-service-pgbouncer-'));
  const ids = process.getuid?.() === 0 ? (idsOf('postgres') ?? idsOf('nobody')) : undefined;
  if (process.getuid?.() === 0 && !ids) throw new Error('pgbouncer refuses to run as root, and there is no "postgres" or "nobody" user to run it as');
  const port = await freePort();
  const config = path.join(dir, 'pgbouncer.ini');
  const authFile = path.join(dir, 'userlist.txt');
  await writeFile(authFile, `${quoted(user)} ${quoted(password)}\n`, { mode: 0o600 });
  await writeFile(
    config,
    [
      '[databases]',
      `* = host=${server.hostname.replace(/^\[|\]$/g, '')} port=${server.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = md5',
      `auth_file = ${authFile}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 500',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  if (ids) for (const file of [dir, config, authFile]) await chown(file, ids.uid, ids.gid);

  const child = spawn(binary, [config], { ...(ids ?? {}), stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM'); // immediate shutdown
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await accepts(port)) {
      const url = new URL(serverUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return { url: url.toString(), stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`pgbouncer did not start: ${log.trim()}`);
}
