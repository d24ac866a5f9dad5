import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { builtinModules } from 'node:module';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from './support/process.js';
import { withDatabase } from './support/urls.js';
import { freePort } from './support/net.js';

/**
 * The production image without a container engine: the Dockerfile's stages are built in a temp
 * directory by the Dockerfile's own COPY and `npm` RUN lines, and its CMD and HEALTHCHECK are
 * run there with its ENV, so the two cannot drift apart.
 */

interface Stage {
  readonly name: string | undefined;
  readonly base: string;
  readonly steps: Step[];
  workdir: string;
  env: Record<string, string>;
  cmd: string[];
  healthcheck: string[];
}
type Step = { kind: 'copy'; from: string | undefined; sources: string[]; dest: string } | { kind: 'run'; command: string };

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, instruction, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    const stage = stages.at(-1);
    if (instruction === 'FROM') {
      const [, base, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest!) ?? [];
      stages.push({ name, base: base!, steps: [], workdir: '/', env: {}, cmd: [], healthcheck: [] });
    } else if (!stage) {
      throw new Error(`instruction before FROM: ${line}`);
    } else if (instruction === 'WORKDIR') {
      stage.workdir = path.posix.resolve(stage.workdir, rest!);
    } else if (instruction === 'ENV') {
      for (const pair of rest!.split(/\s+/)) {
        const [key, ...value] = pair.split('=');
        stage.env[key!] = value.join('=');
      }
    } else if (instruction === 'COPY') {
      const words = rest!.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      stage.steps.push({ kind: 'copy', from, sources: paths.slice(0, -1), dest: paths.at(-1)! });
    } else if (instruction === 'RUN') {
      stage.steps.push({ kind: 'run', command: rest!.replace(/^(--\S+\s+)+/, '') });
    } else if (instruction === 'CMD') {
      stage.cmd = JSON.parse(rest!) as string[];
    } else if (instruction === 'HEALTHCHECK') {
      stage.healthcheck = JSON.parse(rest!.slice(rest!.indexOf('CMD ') + 4)) as string[];
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const runtimeStage = dockerfile.at(-1)!;

const work = mkdtempSync(path.join(tmpdir(), 'system-service-image-'));
// The image's user must reach the tree (and PostgreSQL, run by it, its binaries).
chmodSync(work, 0o755);
/** A stage's filesystem: its container paths live under here. */
const stageRoot = (stage: Stage) => path.join(work, stage.name ?? 'runtime');
const appDir = path.join(stageRoot(runtimeStage), runtimeStage.workdir);
/** A container path of the runtime stage, as a path on this machine. */
const hostPath = (p: string) => (p.startsWith('/') ? path.join(stageRoot(runtimeStage), p) : p);

/**
 * Docker's COPY: into a directory when the destination ends with `/` or there are several
 * sources; a directory source copies its contents.
 */
function copy(sources: string[], destination: string): void {
  const intoDir = destination.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    if (!existsSync(source)) throw new Error(`COPY: ${source} does not exist`);
    cpSync(source, intoDir ? path.join(destination, path.basename(source)) : destination, { recursive: true });
  }
}

function run(command: string, cwd: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`RUN ${command} failed (${code}):\n${output.slice(-4000)}`))));
  });
}

const skippedRuns: string[] = [];

/**
 * Builds the stages as Docker would, each stage waiting only for those it copies from. The
 * RUN lines starting with `npm` build the app and are run; the others prepare the system (the
 * user, /data) and are skipped. The build stage's `npm ci` is met by this checkout's own
 * node_modules, installed from the same lockfile; the runtime stage's runs for real.
 */
async function buildImageTree(): Promise<void> {
  const built = new Map<string, Promise<void>>();
  for (const stage of dockerfile) {
    const buildStage = async () => {
      const root = stageRoot(stage);
      const cwd = path.join(root, stage.workdir);
      mkdirSync(cwd, { recursive: true });
      for (const step of stage.steps) {
        if (step.kind === 'copy') {
          const dest = path.posix.resolve(stage.workdir, step.dest) + (step.dest.endsWith('/') ? '/' : '');
          if (step.from) await built.get(step.from);
          const sources = step.sources.map((s) => (step.from ? path.join(work, step.from, s) : path.join(ROOT, s)));
          copy(sources, path.join(root, dest));
        } else if (!step.command.startsWith('npm ')) {
          skippedRuns.push(step.command);
        } else if (stage !== runtimeStage && /^npm ci( |$)/.test(step.command) && !step.command.includes('--omit=dev')) {
          symlinkSync(path.join(ROOT, 'node_modules'), path.join(cwd, 'node_modules'));
        } else {
          await run(step.command, cwd, stage.env);
        }
      }
    };
    const promise = buildStage();
    promise.catch(() => {}); // awaited below; a stage that copies from it sees the failure too
    if (stage.name) built.set(stage.name, promise);
    else await promise;
  }
  await Promise.all(built.values());
}

/** When root, the service runs as an unprivileged user, as the image's USER does. */
function unprivileged(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}
const user = unprivileged();

/** A DATA_DIR the image's user owns, as the image's /data volume. */
function dataDir(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}

/** The container's environment: the image's ENV and what `docker run -e` adds, nothing else of ours. */
function containerEnv(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, ...runtimeStage.env, LOG_LEVEL: 'warn', ...extra };
}

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command of the image (`node ...`) to completion in its working directory. */
function exec(argv: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] === 'node' ? process.execPath : argv[0]!, argv.slice(1).map(hostPath), { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'], ...user });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Service {
  readonly child: ChildProcess;
  readonly base: string;
  readonly env: Record<string, string>;
  output(): string;
}
const running = new Set<ChildProcess>();

/** Starts the image's CMD and waits until /ready answers 200. */
async function startService(extra: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const env = containerEnv({ SERVICE_HOST: '127.0.0.1', SERVICE_PORT: String(port), ...extra });
  const [command, ...args] = runtimeStage.cmd;
  const child = spawn(command === 'node' ? process.execPath : command!, args.map(hostPath), { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'], ...user });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 150_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}) before it was ready:\n${output}`);
    const ready = await fetch(`${base}/ready`).then((r) => r.status === 200, () => false);
    if (ready) return { child, base, env, output: () => output };
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGKILL');
  throw new Error(`the service was not ready within 150 s:\n${output}`);
}

/** SIGTERM, as `docker stop` sends: the service drains and exits 0. */
async function stopService(service: Service): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => service.child.once('exit', (code) => resolve(code)));
  service.child.kill('SIGTERM');
  const code = await exited;
  running.delete(service.child);
  return code;
}

/** The image's CLI (`system-service` on its PATH is bin/system-service.js). */
const cli = (service: Service, ...args: string[]) => exec(['node', 'bin/system-service.js', ...args], service.env);

const secrets = () => ({ JWT_SECRET_KEY: randomBytes(48).toString('base64'), CHANNEL_SECRETS_KEY: randomBytes(32).toString('base64') });

/** A tenant through the API with a system token from the CLI, then its admin signs in. */
async function createTenantAndSignIn(service: Service, slug: string): Promise<void> {
  const token = await cli(service, 'token', 'system');
  expect(token.stderr).toBe('');
  expect(token.code).toBe(0);
  const password = 'a long production passphrase';
  const created = await fetch(`${service.base}/api/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token.stdout.trim()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ slug, name: 'Production check', admin: { email: `admin@${slug}.example`, password } }),
  });
  expect(created.status, await created.clone().text()).toBe(201);
  const login = await fetch(`${service.base}/api/v1/tenants/${slug}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `admin@${slug}.example`, password }),
  });
  expect(login.status).toBe(200);
  const { access_token } = (await login.json()) as { access_token: string };
  const me = await fetch(`${service.base}/api/v1/tenants/${slug}/me`, { headers: { authorization: `Bearer ${access_token}` } });
  expect(((await me.json()) as { email: string }).email).toBe(`admin@${slug}.example`);
  // The console's files are in the build (and Preact from the production dependencies).
  for (const file of ['/console', '/console/assets/app.js', '/console/assets/preact.js']) expect((await fetch(`${service.base}${file}`)).status, file).toBe(200);

  const list = await cli(service, 'tenants', 'list', '--json');
  expect(list.code, list.stderr).toBe(0);
  expect((JSON.parse(list.stdout) as { slug: string }[]).map((t) => t.slug)).toContain(slug);
}

/**
 * The postgres image's psql runs deploy/postgres-init/*.sql; here its few meta-commands
 * (`\set`, `\getenv`) and `:'var'`/`:"var"` are applied the same way, with `names` in place of
 * the `\set` role and database names (the suite's own cluster already has roles of those names).
 */
function initStatements(names: Record<string, string>, env: Record<string, string>): string[] {
  const dir = path.join(ROOT, 'deploy/postgres-init');
  const vars: Record<string, string> = {};
  const statements: string[] = [];
  let current = '';
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      const trimmed = line.trim();
      const meta = /^\\(set|getenv)\s+(\w+)\s+(\S+)$/.exec(trimmed);
      if (meta) {
        const [, command, name, value] = meta;
        if (command === 'set') vars[name!] = names[name!] ?? value!;
        else if (env[value!] !== undefined) vars[name!] = env[value!]!;
        continue;
      }
      if (trimmed === '' || trimmed.startsWith('--')) continue;
      if (trimmed.startsWith('\\')) throw new Error(`psql meta-command this test does not know: ${trimmed}`);
      current += `${line}\n`;
      if (trimmed.endsWith(';')) {
        statements.push(
          current.replace(/:(['"])(\w+)\1/g, (_, quote: string, name: string) => {
            const value = vars[name];
            if (value === undefined) throw new Error(`psql variable ${name} is not set`);
            return quote === "'" ? pg.escapeLiteral(value) : pg.escapeIdentifier(value);
          }),
        );
        current = '';
      }
    }
  }
  return statements;
}

async function superuser<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await buildImageTree();
}, 900_000);

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('the production image, built from the Dockerfile without a container engine', { timeout: 300_000 }, () => {
  it('builds from the Dockerfile: two stages, the build output copied, only system set-up skipped', () => {
    expect(dockerfile.map((s) => s.name)).toEqual(['build', undefined]);
    expect(runtimeStage.env).toMatchObject({ ENVIRONMENT: 'production', DATA_DIR: '/data' });
    expect(runtimeStage.cmd).toEqual(['node', 'dist/main.js']);
    expect(existsSync(path.join(appDir, 'dist/main.js'))).toBe(true);
    expect(existsSync(path.join(appDir, 'dist/cli.js'))).toBe(true);
    // Assets read at run time come along with the compiled code.
    expect(existsSync(path.join(appDir, 'dist/db/sql/tenant_template.sql'))).toBe(true);
    expect(dockerfile.every((s) => s.base === 'node:20-bookworm-slim')).toBe(true);
    // What is skipped only sets up the system: it runs neither npm nor node.
    expect(skippedRuns.length).toBeGreaterThan(0);
    for (const command of skippedRuns) expect(command).not.toMatch(/(^|&&|;|\|)\s*(npm|node)\s/);
  });

  it('installs production dependencies only, and the built code imports nothing else', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ['tsx', 'typescript', 'vitest', 'eslint', '@types/ws']) {
      expect(Object.keys(manifest.devDependencies)).toContain(dev);
      expect(existsSync(path.join(appDir, 'node_modules', dev)), `${dev} is installed`).toBe(false);
    }
    // Every module a compiled file names (static, dynamic or through createRequire).
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const imported = new Set<string>();
    for (const entry of readdirSync(path.join(appDir, 'dist'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
      const code = readFileSync(path.join(entry.parentPath, entry.name), 'utf8');
      const specifiers = [
        ...code.matchAll(/^(?:import|export)\s[^\n]*?\bfrom\s*(['"])([^'"\n]+)\1/gm),
        ...code.matchAll(/^import\s*(['"])([^'"\n]+)\1/gm),
        ...code.matchAll(/\b(?:import|require)\s*\(\s*(['"])([^'"\n]+)\1/g),
        ...code.matchAll(/\bcreateRequire\([^)]*\)\s*\(\s*(['"])([^'"\n]+)\1/g),
      ];
      for (const m of specifiers) {
        const specifier = m[2]!;
        if (specifier.startsWith('.') || builtins.has(specifier)) continue;
        imported.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
      }
    }
    expect(imported.size).toBeGreaterThan(10);
    for (const name of imported) {
      expect(Object.keys(manifest.dependencies), `${name}, imported by dist/, is a dependency`).toContain(name);
      expect(existsSync(path.join(appDir, 'node_modules', name, 'package.json')), `${name} is installed`).toBe(true);
    }
  });

  it('refuses to start in production without its secrets, naming the missing one', async () => {
    const [command, ...args] = runtimeStage.cmd;
    const noSecrets = await exec([command!, ...args], containerEnv({}));
    expect(noSecrets.code).toBe(1);
    expect(noSecrets.stderr).toBe('Invalid configuration: JWT_SECRET_KEY is required when ENVIRONMENT=production\n');
    const noChannelKey = await exec([command!, ...args], containerEnv({ JWT_SECRET_KEY: secrets().JWT_SECRET_KEY }));
    expect(noChannelKey.code).toBe(1);
    expect(noChannelKey.stderr).toBe('Invalid configuration: CHANNEL_SECRETS_KEY is required when ENVIRONMENT=production\n');
  });

  it('runs the CLI from dist/', async () => {
    const help = await exec(['node', 'bin/system-service.js', '--help'], containerEnv({}));
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/tenants create <slug>/);
  });

  it('runs on its embedded PostgreSQL in DATA_DIR (the single-container trial): ready, healthy, serving, stopping cleanly', async () => {
    const service = await startService({ DATA_DIR: dataDir('data'), ...secrets() });
    const health = await exec(runtimeStage.healthcheck, service.env);
    expect(health.code, health.stdout).toBe(0);
    await createTenantAndSignIn(service, 'trial');
    expect(await stopService(service), service.output()).toBe(0);
    const down = await exec(runtimeStage.healthcheck, service.env);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/\/ready: connect ECONNREFUSED/);
  });

  it("runs against PostgreSQL with compose's owner and runtime roles (deploy/postgres-init), as a non-superuser", async () => {
    const suffix = randomBytes(4).toString('hex');
    const names = { owner: `compose_owner_${suffix}`, runtime: `compose_runtime_${suffix}`, database: `compose_${suffix}` };
    const passwords = { DATABASE_OWNER_PASSWORD: randomBytes(16).toString('hex'), DATABASE_PASSWORD: randomBytes(16).toString('hex') };
    const statements = initStatements(names, passwords);
    expect(statements.map((s) => s.split(/\s+/).slice(0, 2).join(' '))).toEqual(['CREATE ROLE', 'CREATE ROLE', 'CREATE DATABASE']);
    try {
      await superuser(async (c) => {
        for (const statement of statements) await c.query(statement);
      });
      const url = (role: string, password: string) => {
        const parsed = new URL(withDatabase(inject('pgUrl'), names.database));
        parsed.username = role;
        parsed.password = password;
        return parsed.toString();
      };
      const service = await startService({
        DATA_DIR: dataDir('compose-data'),
        DATABASE_URL: url(names.runtime, passwords.DATABASE_PASSWORD),
        DATABASE_OWNER_URL: url(names.owner, passwords.DATABASE_OWNER_PASSWORD),
        ...secrets(),
      });
      await createTenantAndSignIn(service, 'composed');
      expect(await stopService(service), service.output()).toBe(0);
    } finally {
      await superuser(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(names.database)} WITH (FORCE)`);
        const roles = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)', [`${names.database}.`]);
        for (const role of [...roles.rows.map((r) => r.rolname), names.runtime, names.owner]) await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
      });
    }
  });
});
