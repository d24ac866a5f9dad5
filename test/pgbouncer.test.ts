import type { FastifyInstance, LightMyRequestResponse as Response } from 'fastify';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { DEFAULT_PREPARED_STATEMENTS } from '../src/config.js';
import { createDatabase, statementName, type Database } from '../src/db/database.js';
import { tenantRoleNamer } from '../src/db/roles.js';
import { createTestApp, type TestApp } from './support/app.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { bearer, login, PASSWORD, seedTenant, seedUser, type SeededUser } from './support/tenants.js';
import { withDatabase } from './support/urls.js';

/**
 * The service behind Debian's PgBouncer (1.18: it does not carry protocol-level prepared
 * statements) in transaction mode, two server connections per database, with the service's
 * default DATABASE_PREPARED_STATEMENTS. PgBouncer is started by test/pgbouncer-setup.ts;
 * without it these tests are skipped (one line says what to install), unless REQUIRE_PGBOUNCER=1.
 */
const bouncerUrl = inject('pgbouncerUrl');
const SLUGS = ['pba', 'pbb'] as const;
type Slug = (typeof SLUGS)[number];
const other = (slug: Slug): Slug => (slug === 'pba' ? 'pbb' : 'pba');

/** A pool through PgBouncer onto `database`, as the service makes it by default (tenant statements as each tenant's role). */
function bounced(database: string, warnings: string[], create = createDatabase): Database {
  return create({ url: withDatabase(bouncerUrl, database), max: 5, connectionTimeoutMs: 10_000, preparedStatements: DEFAULT_PREPARED_STATEMENTS, tenantRole: tenantRoleNamer(database), onWarning: (m) => warnings.push(m) });
}

describe.skipIf(bouncerUrl === '')('behind PgBouncer in transaction mode (no prepared statement tracking)', () => {
  let direct: TestDatabase;
  let pool: Database;
  let t: TestApp;
  const warnings: string[] = [];
  /** What the instances log as errors (a 500 does): nothing, at the end of each test. */
  const logged: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
  const admins = {} as Record<Slug, SeededUser>;
  const members = {} as Record<Slug, SeededUser>;

  beforeAll(async () => {
    direct = await createTestDatabase();
    pool = bounced(direct.name, warnings);
    t = await createTestApp({ database: { ...direct, database: pool }, logger });
    for (const slug of SLUGS) {
      admins[slug] = await seedTenant(t, slug);
      members[slug] = await seedUser(t, slug, { email: `member@${slug}.example`, roles: ['viewer'] });
    }
  });
  afterEach(() => {
    expect(logged.splice(0)).toEqual([]);
  });
  afterAll(async () => {
    await t?.close();
    await pool?.close();
    await direct?.drop();
  });

  const call = (app: FastifyInstance, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, token?: string, payload?: object, headers: Record<string, string> = {}) =>
    app.inject({ method, url: `/api/v1/tenants/${url}`, headers: { ...(token ? bearer(token) : {}), ...headers }, ...(payload ? { payload } : {}) });

  it('logs in, refreshes, and creates, reads, changes, lists and deletes users; a tenant never answers for the other', async () => {
    for (const slug of SLUGS) {
      // A refresh chain, each token once; a token presented again ends the session.
      const first = await login(t.app, slug, admins[slug].email);
      let refreshToken = first.refresh_token;
      for (let i = 0; i < 3; i++) {
        const res = await call(t.app, 'POST', `${slug}/auth/refresh`, undefined, { refresh_token: refreshToken });
        expect(res.statusCode).toBe(200);
        expect(decodeJwt(res.json().access_token).tenant_slug).toBe(slug);
        refreshToken = res.json().refresh_token;
      }
      expect((await call(t.app, 'GET', `${slug}/me`, first.access_token)).json().email).toBe(admins[slug].email);
      expect((await call(t.app, 'POST', `${slug}/auth/refresh`, undefined, { refresh_token: first.refresh_token })).statusCode).toBe(401);
      expect((await call(t.app, 'GET', `${slug}/me`, first.access_token)).statusCode).toBe(401);

      const token = (await login(t.app, slug, admins[slug].email)).access_token;

      const created = await call(t.app, 'POST', `${slug}/users`, token, { email: `crud@${slug}.example`, password: 'a fine long password', first_name: 'Crud' });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json().id as string;
      for (let i = 0; i < 3; i++) expect((await call(t.app, 'GET', `${slug}/users/${id}`, token)).json()).toMatchObject({ id, email: `crud@${slug}.example` });
      const patched = await call(t.app, 'PATCH', `${slug}/users/${id}`, token, { last_name: 'Changed' }, { 'if-match': '"1"' });
      expect(patched.statusCode).toBe(200);
      expect(patched.json().last_name).toBe('Changed');
      await login(t.app, slug, `crud@${slug}.example`, 'a fine long password');
      const listed = (await call(t.app, 'GET', `${slug}/users?page_size=100&sort=email`, token)).json().items.map((u: { email: string }) => u.email);
      expect(listed).toEqual([`admin@${slug}.example`, `crud@${slug}.example`, `member@${slug}.example`]);
      expect((await call(t.app, 'DELETE', `${slug}/users/${id}`, token)).statusCode).toBe(204);
      expect((await call(t.app, 'GET', `${slug}/users/${id}`, token)).statusCode).toBe(404);

      // The other tenant: its path refuses this token, its ids are not found here, its users do not log in here.
      const them = other(slug);
      expect((await call(t.app, 'GET', `${them}/users`, token)).statusCode).toBe(403);
      expect((await call(t.app, 'GET', `${them}/me`, token)).statusCode).toBe(403);
      expect((await call(t.app, 'GET', `${slug}/users/${admins[them].id}`, token)).statusCode).toBe(404);
      expect((await call(t.app, 'DELETE', `${slug}/users/${members[them].id}`, token)).statusCode).toBe(404);
      expect((await call(t.app, 'POST', `${slug}/auth/login`, undefined, { email: admins[them].email, password: PASSWORD })).statusCode).toBe(401);
    }
  });

  it('two instances never get a wrong answer or a 500 under concurrent mixed requests; a mixed-up statement costs a retry, and the retries die out', async () => {
    // The second instance on a fresh copy of the modules: its own statement registry, as in
    // another process (names in order of first use would mean other statements there).
    const warningsB: string[] = [];
    vi.resetModules();
    const databaseB = await import('../src/db/database.js');
    const supportB = await import('./support/app.js');
    expect(databaseB.createDatabase).not.toBe(createDatabase);
    const poolB = bounced(direct.name, warningsB, databaseB.createDatabase);
    const b = await supportB.buildTestApp(poolB.db, { logger });
    try {
      const instances = [
        { name: 'A', app: t.app },
        { name: 'B', app: b.app },
      ];
      // B meets the statements in another order than A did.
      for (const slug of [...SLUGS].reverse()) {
        const token = (await login(b.app, slug, admins[slug].email)).access_token;
        await call(b.app, 'GET', `${slug}/users?page_size=100`, token);
        await call(b.app, 'GET', `${slug}/users/${members[slug].id}`, token);
      }

      const failures: string[] = [];
      const expectThat = (what: string, ok: boolean, res: Response) => {
        if (!ok) failures.push(`${what}: ${res.statusCode} ${res.body.slice(0, 300)}`);
      };
      /** One client's session on one instance and tenant: every answer checked. */
      const session = async (instance: { name: string; app: FastifyInstance }, slug: Slug, n: number) => {
        const { app } = instance;
        const what = (step: string) => `${instance.name} ${slug} #${n} ${step}`;
        const who = n % 2 === 0 ? admins[slug] : members[slug];
        const signIn = await call(app, 'POST', `${slug}/auth/login`, undefined, { email: who.email, password: PASSWORD });
        const body = signIn.statusCode === 200 ? signIn.json() : undefined;
        expectThat(what('login'), body?.user?.id === who.id && decodeJwt(body.access_token).tenant_slug === slug, signIn);
        if (!body) return;
        const token = body.access_token as string;
        const checks: Promise<void>[] = [];
        const check = (step: string, request: Promise<Response>, ok: (res: Response) => boolean) => checks.push(request.then((res) => expectThat(what(step), ok(res), res)));
        check('me', call(app, 'GET', `${slug}/me`, token), (r) => r.statusCode === 200 && r.json<{ email: string }>().email === who.email);
        for (const user of [admins[slug], members[slug]]) {
          check(`get ${user.email}`, call(app, 'GET', `${slug}/users/${user.id}`, token), (r) => r.statusCode === 200 && r.json<{ email: string }>().email === user.email);
        }
        const listed = `admin@${slug}.example,member@${slug}.example`;
        check('list', call(app, 'GET', `${slug}/users?page_size=100&sort=email`, token), (r) => r.statusCode === 200 && r.json<{ items: { email: string }[] }>().items.map((u) => u.email).join() === listed);
        check('the other tenant by id', call(app, 'GET', `${slug}/users/${admins[other(slug)].id}`, token), (r) => r.statusCode === 404);
        check("the other tenant's path", call(app, 'GET', `${other(slug)}/users`, token), (r) => r.statusCode === 403);
        const refreshed = call(app, 'POST', `${slug}/auth/refresh`, undefined, { refresh_token: body.refresh_token });
        check('refresh', refreshed, (r) => r.statusCode === 200 && decodeJwt(r.json<{ access_token: string }>().access_token).tenant_slug === slug);
        await Promise.all(checks);
      };
      // Rounds of concurrent sessions, until one costs no retry: the server connections come to
      // hold every statement and the client connections learn what they hold.
      const retries = () => pool.statementRetries + poolB.statementRetries;
      const perRound: number[] = [];
      while (perRound.length < 3 || (perRound.length < 15 && perRound.at(-1)! > 0)) {
        const before = retries();
        const sessions = [];
        for (const instance of instances) for (const slug of SLUGS) for (let n = 0; n < 4; n++) sessions.push(session(instance, slug, n));
        await Promise.all(sessions);
        perRound.push(retries() - before);
      }
      expect(failures).toEqual([]);

      // The pooler did mix the statements up (two instances, ten client connections, two server
      // connections): each time it cost a retry, said once per instance, and the retries died out.
      expect(retries()).toBeGreaterThan(0);
      expect(perRound.at(-1), `retries per round: ${perRound.join(', ')}`).toBe(0);
      expect(warnings).toHaveLength(pool.statementRetries > 0 ? 1 : 0);
      expect(warningsB).toHaveLength(poolB.statementRetries > 0 ? 1 : 0);
      expect([...warnings, ...warningsB].join('\n')).toMatch(/PgBouncer older than 1\.21/);

      // Whatever server connection answers, each name it holds is its text's.
      const held = await Promise.all(
        Array.from({ length: 6 }, () => sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements`.execute(pool.db)),
      );
      const statements = held.flatMap((r) => r.rows);
      expect(statements.length).toBeGreaterThan(0);
      // (The tenant role's statement has one name and one text everywhere.)
      for (const s of statements) {
        if (s.name === 'ss_set_role') expect(s.statement).toBe("SELECT set_config('role', $1, true)");
        else expect(s.name).toBe(statementName(s.statement));
      }
    } finally {
      await b.app.close();
      await poolB.close();
    }
  });
});
