import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/process.js';

/**
 * compose.yaml as Debian's docker-compose reads it (`docker-compose config`), with no container
 * engine needed. CI installs docker-compose (.ci/run); elsewhere the tests are skipped without it.
 */
const available = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
if (!available) {
  if (process.env.CI === 'true') throw new Error('docker-compose is not installed (apt-get install docker-compose): CI validates compose.yaml with it');
  console.warn('compose.yaml tests are skipped: install docker-compose (Debian package) to run them.');
}

const SECRETS = {
  POSTGRES_PASSWORD: 'postgres-pw',
  DATABASE_OWNER_PASSWORD: 'owner-pw',
  DATABASE_PASSWORD: 'runtime-pw',
  JWT_SECRET_KEY: 'jwt-secret',
  CHANNEL_SECRETS_KEY: 'channel-key',
};

// An empty env file: a developer's own .env beside compose.yaml does not change what is checked.
const work = mkdtempSync(path.join(tmpdir(), 'system-service-compose-'));
const envFile = path.join(work, 'empty.env');
writeFileSync(envFile, '');
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface ComposeService {
  image?: string;
  profiles?: string[];
  environment: Record<string, string>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  ports?: { published: number; target: number }[];
}

/** `docker-compose config` with only the given variables, its output as JSON (through python3-yaml, which docker-compose itself uses). */
function config(env: Record<string, string>, ...args: string[]): { status: number | null; stderr: string; services?: Record<string, ComposeService> } {
  const vars = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, ...env };
  const result = spawnSync('docker-compose', ['--env-file', envFile, '-f', 'compose.yaml', ...args, 'config'], { cwd: ROOT, env: vars, encoding: 'utf8' });
  if (result.status !== 0) return { status: result.status, stderr: result.stderr };
  const json = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: result.stdout, encoding: 'utf8' });
  expect(json.status, json.stderr).toBe(0);
  return { status: 0, stderr: result.stderr, services: (JSON.parse(json.stdout) as { services: Record<string, ComposeService> }).services };
}

/** The role and database names deploy/postgres-init gives PostgreSQL. */
function initNames(): Record<string, string> {
  const sql = readFileSync(path.join(ROOT, 'deploy/postgres-init/10-system-service-roles.sql'), 'utf8');
  return Object.fromEntries([...sql.matchAll(/^\\set (\w+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe.skipIf(!available)('compose.yaml', () => {
  it('is valid: PostgreSQL 15 with the init roles, Redis, the service, each with a health check and its volume', () => {
    const { status, stderr, services } = config(SECRETS);
    expect(status, stderr).toBe(0);
    expect(Object.keys(services!).sort()).toEqual(['pgbouncer', 'postgres', 'redis', 'system-service']);
    const { postgres, redis, pgbouncer } = services!;
    const service = services!['system-service']!;
    expect(postgres!.image).toMatch(/^postgres:15/);
    expect(postgres!.volumes!.some((v) => v.endsWith('/deploy/postgres-init:/docker-entrypoint-initdb.d:ro'))).toBe(true);
    expect(postgres!.volumes!.some((v) => v.endsWith(':/var/lib/postgresql/data:rw'))).toBe(true);
    expect(redis!.volumes!.some((v) => v.endsWith(':/data:rw'))).toBe(true);
    expect(service.volumes!.some((v) => v.endsWith(':/data:rw'))).toBe(true);
    for (const [name, s] of Object.entries(services!)) expect(s.healthcheck?.test, `${name} has a health check`).toBeDefined();
    expect(service.healthcheck!.test).toEqual(['CMD', 'node', '/app/deploy/healthcheck.mjs']);
    expect(service.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
    expect(service.ports).toEqual([{ published: 8004, target: 8004 }]);

    // The service connects as the roles the init script creates, with their passwords.
    const { owner, runtime, database } = initNames();
    expect(postgres!.environment).toMatchObject({ DATABASE_OWNER_PASSWORD: 'owner-pw', DATABASE_PASSWORD: 'runtime-pw' });
    expect(service.environment).toMatchObject({
      ENVIRONMENT: 'production',
      DATABASE_URL: `postgresql://${runtime}:runtime-pw@postgres:5432/${database}`,
      DATABASE_OWNER_URL: `postgresql://${owner}:owner-pw@postgres:5432/${database}`,
      REDIS_URL: 'redis://redis:6379',
      JWT_SECRET_KEY: 'jwt-secret',
      CHANNEL_SECRETS_KEY: 'channel-key',
    });
    expect(pgbouncer!.profiles).toEqual(['pgbouncer']);
    expect(pgbouncer!.environment).toMatchObject({ DB_HOST: 'postgres', DB_NAME: database, DB_USER: runtime, DB_PASSWORD: 'runtime-pw', POOL_MODE: 'transaction' });
  });

  it('with the pgbouncer profile, sends requests through PgBouncer and migrations straight to PostgreSQL', () => {
    const { status, stderr, services } = config({ ...SECRETS, DATABASE_HOST: 'pgbouncer' }, '--profile', 'pgbouncer');
    expect(status, stderr).toBe(0);
    const { runtime, owner, database } = initNames();
    expect(services!['system-service']!.environment).toMatchObject({
      DATABASE_URL: `postgresql://${runtime}:runtime-pw@pgbouncer:5432/${database}`,
      DATABASE_OWNER_URL: `postgresql://${owner}:owner-pw@postgres:5432/${database}`,
    });
  });

  it('refuses to run without its secrets, naming the missing one', () => {
    for (const missing of Object.keys(SECRETS)) {
      const env: Record<string, string> = { ...SECRETS };
      delete env[missing];
      const { status, stderr } = config(env);
      expect(status).not.toBe(0);
      expect(stderr).toContain(`set ${missing}`);
    }
  });
});
