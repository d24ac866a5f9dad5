import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { revealConfig } from '../src/records/resources/channel-configs.js';
import { NOT_ARCHIVED } from '../src/tenancy/archive.js';
import { BackupScheduler } from '../src/tenancy/backup-scheduler.js';
import { useTenants } from './support/fixture.js';
import { caller, upload } from './support/records.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/* SPEC §13: export, import, fork, backups and restore, suspend and delete, with two tenants and more. */

const t = useTenants(['la', 'lb']);
const call = (token: string, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) => caller(t.app)(token, method, url, payload);
const platform = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url: `/api/v1/tenants${url}`, headers: { authorization: `Bearer ${await t.systemToken()}`, ...headers }, ...(payload !== undefined ? { payload: payload as never } : {}) });

const db = () => t.db.database.db;

/** Fills tenant `slug` with a bit of everything: users, a team, notes, a file, a channel with a secret, a webhook, an API key. */
async function fill(slug: string, token: string) {
  for (let i = 0; i < 5; i++) await seedUser(t, slug, { email: `u${i}@${slug}.example`, roles: i % 2 ? ['manager'] : ['viewer'] });
  const team = await call(token, 'POST', `${slug}/teams`, { name: `Team of ${slug}` });
  expect(team.statusCode).toBe(201);
  // A parent newer than its child: rows that point within a table load whatever their order.
  const parent = await call(token, 'POST', `${slug}/teams`, { name: `Parent of ${slug}` });
  expect((await call(token, 'PATCH', `${slug}/teams/${team.json().id}`, { parent_team_id: parent.json().id })).statusCode).toBe(200);
  for (let i = 0; i < 3; i++) expect((await call(token, 'POST', `${slug}/notes`, { title: `note ${i}`, content: `about ${slug} ${i}` })).statusCode).toBe(201);
  const bytes = randomBytes(4096);
  const file = await upload(t.app, token, `${slug}/attachments`, { name: 'report.bin', content: bytes });
  expect(file.statusCode).toBe(201);
  const secret = `pw-${randomBytes(6).toString('hex')}`;
  const channel = await call(token, 'POST', `${slug}/channel-configs`, { channel: 'email', name: 'Outbound', config: { host: 'smtp.example.com', port: 587, username: 'm', password: secret, from: 'no@example.com' } });
  expect(channel.statusCode).toBe(201);
  expect((await call(token, 'POST', `${slug}/webhooks`, { url: 'http://127.0.0.1:9/in', events: ['user.created'] })).statusCode).toBe(201);
  expect((await call(token, 'POST', `${slug}/me/api-keys`, { name: 'ci', permissions: ['users.read'] })).statusCode).toBe(201);
  return { bytes, fileId: file.json().id as string, secret, channelId: channel.json().id as string };
}

/** Every row of every table of a schema, as JSON, in key order, without `skip` columns. */
async function rows(schema: string, table: string, skip: readonly string[] = []): Promise<unknown[]> {
  const result = await sql<{ row: Record<string, unknown> }>`SELECT to_jsonb(x) AS row FROM ${sql.id(schema, table)} x`.execute(db());
  return result.rows.map((r) => Object.fromEntries(Object.entries(r.row).filter(([k]) => !skip.includes(k)))).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** Columns that change when rows move to another schema: keys and secrets bound to it. */
const BOUND: Record<string, string[]> = { attachments: ['storage_key'], channel_configs: ['encrypted_secrets'], webhooks: ['encrypted_secret'] };

/** A schema's index definitions, its name taken out (a fork's and an import's must equal a provisioned schema's). */
async function indexesOf(schema: string): Promise<string[]> {
  const r = await sql<{ def: string }>`SELECT indexdef AS def FROM pg_indexes WHERE schemaname = ${schema} ORDER BY indexname`.execute(db());
  return r.rows.map((x) => x.def.replaceAll(`${schema}.`, 'tenant.'));
}

async function tablesOf(schema: string): Promise<string[]> {
  const r = await sql<{ name: string }>`SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relkind = 'r' ORDER BY 1`.execute(db());
  return r.rows.map((x) => x.name);
}

async function exportOf(slug: string): Promise<Buffer> {
  const res = await platform('GET', `/${slug}/export`);
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('application/gzip');
  expect(res.headers['content-disposition']).toMatch(new RegExp(`attachment; filename="${slug}-\\d{4}-\\d{2}-\\d{2}\\.tar\\.gz"`));
  return res.rawPayload;
}

/** The entries of an archive, by name. */
async function entries(archive: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    void buffer(stream).then((b) => {
      out.set(header.name, b);
      next();
    });
  });
  await pipeline(Readable.from(gunzipSync(archive)), extract);
  return out;
}

/** The same archive with its entries changed by `edit` (undefined drops one). */
async function rewrite(archive: Buffer, edit: (name: string, content: Buffer) => Buffer | undefined): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of await entries(archive)) {
    const changed = edit(name, content);
    if (changed) pack.entry({ name }, changed);
  }
  pack.finalize();
  return gzipSync(await buffer(pack));
}

/** The archive with `name` set to `content`, the manifest's rows and SHA-256 made to match (`replace`: instead of the table's rows). */
async function rewriteWith(archive: Buffer, name: string, content: string, replace = false): Promise<Buffer> {
  const table = /^tables\/(\w+)\.ndjson$/.exec(name)![1]!;
  const files = await entries(archive);
  const body = Buffer.from(replace || !files.has(name) ? content : files.get(name)!.toString() + content);
  return rewrite(archive, (entry, data) => {
    if (entry === name) return body;
    if (entry !== 'manifest.json') return data;
    const m = JSON.parse(data.toString());
    m.tables[table] = { rows: body.toString().split('\n').filter(Boolean).length, sha256: createHash('sha256').update(body).digest('hex') };
    return Buffer.from(JSON.stringify(m));
  }).then(async (out) => (files.has(name) ? out : appendEntry(out, name, body)));
}

async function appendEntry(archive: Buffer, name: string, body: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  for (const [entry, data] of await entries(archive)) pack.entry({ name: entry }, data);
  pack.entry({ name }, body);
  pack.finalize();
  return gzipSync(await buffer(pack));
}

const importArchive = (archive: Buffer, query: string, type = 'application/gzip') => platform('POST', `/import?${query}`, archive, { 'content-type': type });

/** Nothing of tenant `slug` anywhere: registry, schema, files. */
async function nothingLeftOf(slug: string) {
  expect(await db().withSchema('shared').selectFrom('tenants').select('id').where('slug', '=', slug).executeTakeFirst()).toBeUndefined();
  expect(await db().withSchema('shared').selectFrom('tenant_schemas').select('schema_name').where('schema_name', '=', `tenant_${slug}`).executeTakeFirst()).toBeUndefined();
  expect(await tablesOf(`tenant_${slug}`)).toEqual([]);
  expect(existsSync(path.join(t.attachmentsDir, `tenant_${slug}`)) ? readdirSync(path.join(t.attachmentsDir, `tenant_${slug}`)) : []).toEqual([]);
}

describe('tenant export and import', { timeout: 60_000 }, () => {
  it('exports a manifest and NDJSON per table, and imports them as an identical tenant whose users sign in', async () => {
    const filled = await fill('la', t.tokens.la);
    await fill('lb', t.tokens.lb);
    const archive = await exportOf('la');
    const files = await entries(archive);
    const manifest = JSON.parse(files.get('manifest.json')!.toString());
    expect(manifest).toMatchObject({ format: 'system-service-tenant', format_version: 1, schema_version: t.schemas.latestVersion, tenant: { slug: 'la' } });
    expect(manifest.tables.users.rows).toBe(6);
    expect(manifest.tables.user_sessions).toBeUndefined();
    expect(manifest.secrets_key_ids).toHaveLength(1);
    expect(Object.keys(manifest.attachments)).toHaveLength(1);
    const users = files.get('tables/users.ndjson')!.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(users.map((u) => u.email).sort()).toContain('u3@la.example');
    expect(users.every((u) => typeof u.password_hash === 'string' && u.password_hash.startsWith('$argon2id$'))).toBe(true);

    const imported = await importArchive(archive, 'slug=la_copy&name=Copy%20of%20LA');
    expect(imported.statusCode, imported.body).toBe(201);
    expect(imported.json()).toMatchObject({ slug: 'la_copy', name: 'Copy of LA', status: 'ready', tenant_status: 'active', schema_version: t.schemas.latestVersion });

    // Every table, row for row (audit: plus the import's own row).
    for (const table of Object.keys(manifest.tables)) {
      const skip = BOUND[table] ?? [];
      const copy = await rows('tenant_la_copy', table, skip);
      const source = await rows('tenant_la', table, skip);
      if (table === 'audit_logs') expect(copy.filter((r) => (r as { action: string }).action !== 'tenant.imported'), table).toEqual(source);
      else expect(copy, table).toEqual(source);
    }
    // File bytes under the new schema; the channel secret opens under it.
    expect(readFileSync(path.join(t.attachmentsDir, 'tenant_la_copy', filled.fileId)).equals(filled.bytes)).toBe(true);
    const channel = await tenantDb(db(), 'tenant_la_copy').selectFrom('channel_configs').selectAll().where('id', '=', filled.channelId).executeTakeFirstOrThrow();
    expect(revealConfig(t.services.secrets, 'tenant_la_copy', channel)).toMatchObject({ password: filled.secret });
    // Users sign in with their passwords; the copy is a tenant of its own.
    const copyAdmin = await login(t.app, 'la_copy', 'admin@la.example');
    const file = await call(copyAdmin.access_token, 'GET', `la_copy/attachments/${filled.fileId}/content`);
    expect(file.statusCode).toBe(200);
    expect(file.rawPayload.equals(filled.bytes)).toBe(true);
    expect((await login(t.app, 'la_copy', 'u1@la.example')).access_token).toBeTruthy();
    expect((await call(copyAdmin.access_token, 'GET', 'lb/users')).json().code).toBe('auth.wrong_tenant');
    const audit = await call(copyAdmin.access_token, 'GET', 'la_copy/audit-logs?action=tenant.imported');
    expect(audit.json().items).toHaveLength(1);
    expect(audit.json().items[0].metadata).toMatchObject({ from: 'la' });
  });

  it('migrates an archive of an older schema version', async () => {
    const archive = await exportOf('lb');
    // Version 7 had no audit hash chain: its audit rows come without seq and hash.
    const unchained = (await entries(archive))
      .get('tables/audit_logs.ndjson')!
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const { seq: _seq, hash: _hash, ...rest } = JSON.parse(line);
        return `${JSON.stringify(rest)}\n`;
      })
      .join('');
    const older = await rewrite(await rewriteWith(archive, 'tables/audit_logs.ndjson', unchained, true), (name, content) => {
      if (/^tables\/(mfa|oidc)_\w+\.ndjson$/.test(name)) return undefined;
      if (name !== 'manifest.json') return content;
      const m = JSON.parse(content.toString());
      // Tables of later migrations were not in a version 7 archive.
      const tables = Object.fromEntries(Object.entries(m.tables as Record<string, unknown>).filter(([table]) => !/^(mfa|oidc)_/.test(table)));
      return Buffer.from(JSON.stringify({ ...m, schema_version: 7, tables }));
    });
    const res = await importArchive(older, 'slug=lb_old');
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().schema_version).toBe(t.schemas.latestVersion);
    expect(await tablesOf('tenant_lb_old')).toContain('realtime_tickets');
    expect(await indexesOf('tenant_lb_old')).toEqual(await indexesOf('tenant_lb'));
    const oldAdmin = (await login(t.app, 'lb_old', 'admin@lb.example')).access_token;
    expect(oldAdmin).toBeTruthy();
    // The migration chained the loaded rows in the order they were written, and the chain goes on.
    const verified = await call(oldAdmin, 'GET', 'lb_old/audit-logs/verify');
    expect(verified.json()).toMatchObject({ valid: true });
    const oldRows = await sql<{ seq: string; action: string }>`SELECT seq, action FROM tenant_lb_old.audit_logs ORDER BY created_at, id`.execute(db());
    expect(oldRows.rows.map((r) => Number(r.seq))).toEqual(oldRows.rows.map((_, n) => n + 1));
    expect(oldRows.rows.at(-1)!.action).toBe('auth.login');
  });

  it('refuses a broken, altered or newer archive, and a taken slug, leaving nothing behind', async () => {
    const archive = await exportOf('la');
    const flipped = await rewrite(archive, (name, content) => {
      if (name !== 'tables/users.ndjson') return content;
      const copy = Buffer.from(content);
      copy[10] = copy[10]! ^ 0x01;
      return copy;
    });
    const newer = await rewrite(archive, (name, content) => (name === 'manifest.json' ? Buffer.from(JSON.stringify({ ...JSON.parse(content.toString()), schema_version: 999 })) : content));
    const missing = await rewrite(archive, (name, content) => (name === 'tables/roles.ndjson' ? undefined : content));
    const extra = await rewrite(archive, (name, content) => content);
    const cases: [string, Buffer, RegExp][] = [
      ['a flipped byte', flipped, /tables\/users\.ndjson does not match its SHA-256/],
      ['a truncated gzip', archive.subarray(0, Math.floor(archive.length / 2)), /not a valid tenant export/],
      ['a newer schema version', newer, /schema version 999 is newer/],
      ['a missing table file', missing, /tables\/roles\.ndjson is missing/],
      ['no archive at all', Buffer.from('{"hello": "world"}'), /not a valid tenant export/],
    ];
    for (const [what, body, detail] of cases) {
      const res = await importArchive(body, 'slug=la_bad');
      expect(res.statusCode, what).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json(), what).toMatchObject({ code: 'tenant.archive_invalid' });
      expect(res.json().detail, what).toMatch(detail);
      await nothingLeftOf('la_bad');
    }
    // Rows an archive never carries (sessions: an archive signs nobody in), rows that are not objects.
    const withSessions = await rewrite(archive, (name, content) => content);
    const sessions = await tenantDb(db(), 'tenant_la').selectFrom('user_sessions').selectAll().execute();
    expect(sessions.length).toBeGreaterThan(0);
    const injected = await rewriteWith(withSessions, 'tables/user_sessions.ndjson', sessions.map((row) => JSON.stringify(row)).join('\n') + '\n');
    const notObject = await rewriteWith(archive, 'tables/notes.ndjson', '1\n"x"\n', true);
    for (const [what, body, detail] of [
      ['a sessions table', injected, /does not carry user_sessions/],
      ['rows that are not objects', notObject, /tables\/notes\.ndjson holds a row that is not a JSON object/],
    ] as const) {
      const res = await importArchive(body, 'slug=la_bad');
      expect(res.statusCode, what).toBe(400);
      expect(res.json().detail, what).toMatch(detail);
      await nothingLeftOf('la_bad');
    }
    // The unchanged rewrite still imports: the cases above failed for what they changed.
    expect((await importArchive(extra, 'slug=la_fine')).statusCode).toBe(201);

    const taken = await importArchive(archive, 'slug=lb');
    expect(taken.statusCode).toBe(409);
    expect(taken.json().code).toBe('tenant.slug_taken');
    const badSlug = await importArchive(archive, 'slug=No!');
    expect(badSlug.statusCode).toBe(400);
    expect(JSON.stringify(badSlug.json())).toMatch(/slug/);
    const asJson = await platform('POST', '/import?slug=la_json', { archive: 'x' });
    expect(asJson.statusCode).toBe(415);
    await nothingLeftOf('la_json');
    // Without a system token: 401, and nothing read.
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/import?slug=la_anon', payload: archive, headers: { 'content-type': 'application/gzip' } })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/la/export', headers: bearer(t.tokens.la) })).statusCode).toBe(403);
  });

  it('loads rows that point within their table across batches, and falls back to the slug for a bad name', async () => {
    await sql`INSERT INTO tenant_lb.teams (name) SELECT 'bulk ' || g FROM generate_series(1, 5001) g`.execute(db());
    await sql`UPDATE tenant_lb.teams SET parent_team_id = (SELECT id FROM tenant_lb.teams WHERE name = 'bulk 5001') WHERE name = 'bulk 1'`.execute(db());
    const archive = await rewrite(await exportOf('lb'), (name, content) => (name === 'manifest.json' ? Buffer.from(JSON.stringify({ ...JSON.parse(content.toString()), tenant: { slug: 'lb', schema: 'tenant_lb', name: 'x'.repeat(5000) } })) : content));
    const res = await importArchive(archive, 'slug=lb_teams');
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().name).toBe('lb_teams');
    expect(await rows('tenant_lb_teams', 'teams')).toEqual(await rows('tenant_lb', 'teams'));
    expect((await platform('DELETE', '/lb_teams?backup=false')).statusCode).toBe(200);
    await sql`DELETE FROM tenant_lb.teams WHERE name LIKE 'bulk %'`.execute(db());
  });

  it('exports one snapshot while users are being created', async () => {
    const created: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 400; i++) {
        const res = await call(t.tokens.lb, 'POST', 'lb/users', { email: `w${i}@lb.example` });
        if (res.statusCode === 201) created.push(res.json().id);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const archive = await exportOf('lb');
    writing = false;
    await writer;
    const files = await entries(archive);
    const manifest = JSON.parse(files.get('manifest.json')!.toString());
    const lines = (table: string) => files.get(`tables/${table}.ndjson`)!.toString().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const users = new Set(lines('users').map((u) => u.id));
    const audited = new Set(lines('audit_logs').filter((a) => a.action === 'users.create').map((a) => a.entity_id));
    expect(users.size).toBe(manifest.tables.users.rows);
    // A user and its audit row are written together: the snapshot holds both or neither.
    const during = created.filter((id) => users.has(id) || audited.has(id));
    expect(during.length).toBeGreaterThan(0);
    for (const id of created) expect(users.has(id), id).toBe(audited.has(id));
    expect((await importArchive(archive, 'slug=lb_snap')).statusCode).toBe(201);
  });

  it('exports and imports over a real HTTP connection, the upload arriving in small pieces', async () => {
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const authorization = `Bearer ${await t.systemToken()}`;
    const exported = await fetch(`${base}/api/v1/tenants/la/export`, { headers: { authorization } });
    expect(exported.status).toBe(200);
    const archive = Buffer.from(await exported.arrayBuffer());
    // 1 KiB at a time, each its own write: the server sees the body as a socket stream, not one buffer.
    const pieces = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < archive.length; i += 1024) controller.enqueue(archive.subarray(i, i + 1024));
        controller.close();
      },
    });
    const res = await fetch(`${base}/api/v1/tenants/import?slug=la_http`, {
      method: 'POST',
      body: pieces,
      duplex: 'half',
      headers: { authorization, 'content-type': 'application/gzip' },
      signal: AbortSignal.timeout(20_000),
    } as RequestInit);
    expect(res.status, await res.clone().text()).toBe(201);
    expect(((await res.json()) as { slug: string }).slug).toBe('la_http');
    expect(await rows('tenant_la_http', 'users')).toEqual(await rows('tenant_la', 'users'));
    expect((await platform('DELETE', '/la_http?backup=false')).statusCode).toBe(200);
  });
});

describe('tenant fork', { timeout: 60_000 }, () => {
  it('copies a tenant inside the database, without sessions, keys, endpoints or anything leaving it', async () => {
    const res = await platform('POST', '/la/fork', { slug: 'la_fork' });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ slug: 'la_fork', status: 'ready', tenant_status: 'active' });
    // Its plain indexes were built after the copy: the same set as the source's.
    expect(await indexesOf('tenant_la_fork')).toEqual(await indexesOf('tenant_la'));
    expect(await indexesOf('tenant_la_fork')).toContainEqual(expect.stringContaining('users_search_tsv_idx'));
    const fork = tenantDb(db(), 'tenant_la_fork');
    for (const table of ['user_sessions', 'api_keys', 'webhooks', 'outbox_events', 'webhook_deliveries']) {
      expect((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id('tenant_la_fork', table)}`.execute(db())).rows[0]!.n, table).toBe('0');
    }
    expect(await rows('tenant_la_fork', 'users')).toEqual(await rows('tenant_la', 'users'));
    expect(await rows('tenant_la_fork', 'roles')).toEqual(await rows('tenant_la', 'roles'));
    const channels = await fork.selectFrom('channel_configs').selectAll().execute();
    expect(channels.length).toBeGreaterThan(0);
    expect(channels.every((c) => c.is_enabled === false)).toBe(true);
    for (const c of channels) expect(revealConfig(t.services.secrets, 'tenant_la_fork', c)).toHaveProperty('password');

    const admin = await login(t.app, 'la_fork', 'admin@la.example');
    expect((await call(admin.access_token, 'GET', 'la_fork/me/api-keys')).json().items).toEqual([]);
    // Independent: a user made in the fork is not in the source, and the reverse.
    expect((await call(admin.access_token, 'POST', 'la_fork/users', { email: 'only-in-fork@la.example' })).statusCode).toBe(201);
    expect((await call(t.tokens.la, 'POST', 'la/users', { email: 'only-in-source@la.example' })).statusCode).toBe(201);
    const emails = async (token: string, slug: string) => (await call(token, 'GET', `${slug}/users?page_size=100`)).json().items.map((u: { email: string }) => u.email);
    expect(await emails(admin.access_token, 'la_fork')).toContain('only-in-fork@la.example');
    expect(await emails(admin.access_token, 'la_fork')).not.toContain('only-in-source@la.example');
    expect(await emails(t.tokens.la, 'la')).not.toContain('only-in-fork@la.example');
    // Both audits record it.
    expect((await call(t.tokens.la, 'GET', 'la/audit-logs?action=tenant.forked')).json().items[0].metadata).toMatchObject({ fork: 'la_fork' });
    expect((await call(admin.access_token, 'GET', 'la_fork/audit-logs?action=tenant.forked_from')).json().items[0].metadata).toMatchObject({ source: 'la' });
    // No mail leaves the fork until its admin turns mail on; the source's invitation went out.
    const mailTo = (to: string) => t.mailer.sent.filter((m) => m.to === to);
    expect(mailTo('only-in-fork@la.example')).toHaveLength(0);
    expect(mailTo('only-in-source@la.example')).toHaveLength(1);
    expect((await call(admin.access_token, 'PUT', 'la_fork/settings/mail.enabled', { value: true })).statusCode).toBe(200);
    expect((await call(admin.access_token, 'POST', 'la_fork/users', { email: 'after-mail-on@la.example' })).statusCode).toBe(201);
    expect(mailTo('after-mail-on@la.example')).toHaveLength(1);
  });

  it('refuses a taken or bad slug and an unknown source', async () => {
    expect((await platform('POST', '/la/fork', { slug: 'lb' })).json().code).toBe('tenant.slug_taken');
    const bad = await platform('POST', '/la/fork', { slug: '9x' });
    expect(bad.statusCode).toBe(400);
    expect(JSON.stringify(bad.json())).toMatch(/slug/);
    expect((await platform('POST', '/nobody_here/fork', { slug: 'la_other' })).statusCode).toBe(404);
    await nothingLeftOf('la_other');
  });
});

describe('tenant backups', { timeout: 90_000 }, () => {
  it('backs up, restores the exact earlier rows in place, ends sessions and records tenant.restored', async () => {
    const made = await platform('POST', '/lb/backups');
    expect(made.statusCode, made.body).toBe(201);
    const backup = made.json();
    expect(backup).toMatchObject({ tenant_slug: 'lb', kind: 'manual', schema_version: t.schemas.latestVersion });
    expect(backup.sha256).toMatch(/^[0-9a-f]{64}$/);
    const before = new Map<string, unknown[]>();
    const tables = (await tablesOf('tenant_lb')).filter((x) => x !== 'audit_logs' && !NOT_ARCHIVED.includes(x));
    for (const table of tables) before.set(table, await rows('tenant_lb', table));
    const auditBefore = await rows('tenant_lb', 'audit_logs');
    const laBefore = await rows('tenant_la', 'users');

    // Changes after the backup.
    expect((await call(t.tokens.lb, 'POST', 'lb/users', { email: 'after-backup@lb.example' })).statusCode).toBe(201);
    const note = (await call(t.tokens.lb, 'GET', 'lb/notes')).json().items[0];
    expect((await call(t.tokens.lb, 'DELETE', `lb/notes/${note.id}`)).statusCode).toBe(204);
    await seedUser(t, 'lb', { email: 'seeded-after@lb.example' });

    const listed = await platform('GET', '/lb/backups');
    expect(listed.json().items.map((b: { id: string }) => b.id)).toContain(backup.id);
    const restored = await platform('POST', `/lb/backups/${backup.id}/restore`);
    expect(restored.statusCode, restored.body).toBe(200);
    for (const table of tables) expect(await rows('tenant_lb', table), table).toEqual(before.get(table));
    const audit = await rows('tenant_lb', 'audit_logs');
    expect(audit.filter((r) => (r as { action: string }).action !== 'tenant.restored')).toEqual(auditBefore);
    expect(audit.filter((r) => (r as { action: string }).action === 'tenant.restored')).toHaveLength(1);
    expect(await rows('tenant_la', 'users')).toEqual(laBefore);
    // Sessions ended: the old token is refused at once; the password still signs in.
    expect((await call(t.tokens.lb, 'GET', 'lb/me')).statusCode).toBe(401);
    t.tokens.lb = (await login(t.app, 'lb', 'admin@lb.example')).access_token;
    expect((await call(t.tokens.lb, 'GET', 'lb/users?search=after-backup')).json().items).toEqual([]);
    // Links in flight (reset, verification) are not part of a backup: restored, none is left.
    for (const table of ['password_reset_tokens', 'email_verification_tokens']) {
      expect((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.id('tenant_lb', table)}`.execute(db())).rows[0]!.n, table).toBe('0');
    }
  });

  it('refuses a backup file changed on disk, and an unknown backup, changing nothing', async () => {
    const backup = (await platform('POST', '/la/backups')).json();
    const file = readdirSync(t.backupsDir, { recursive: true }).map(String).find((f) => f.endsWith(backup.id))!;
    const full = path.join(t.backupsDir, file);
    const bytes = readFileSync(full);
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff;
    writeFileSync(full, bytes);
    const usersBefore = await rows('tenant_la', 'users');
    const res = await platform('POST', `/la/backups/${backup.id}/restore`);
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('tenant.archive_invalid');
    expect(await rows('tenant_la', 'users')).toEqual(usersBefore);
    expect((await call(t.tokens.la, 'GET', 'la/me')).statusCode).toBe(200);
    expect((await platform('POST', `/la/backups/00000000-0000-4000-8000-000000000000/restore`)).statusCode).toBe(404);
    expect((await platform('POST', `/lb/backups/${backup.id}/restore`)).statusCode).toBe(404);
    expect((await platform('POST', '/la/backups/nope/restore')).statusCode).toBe(400);
  });

  it('backs every tenant up on a schedule, once per period across instances, and prunes past retention', async () => {
    const one = new BackupScheduler(db(), t.lifecycle, { everyMs: 3_600_000, retentionDays: 14 });
    const two = new BackupScheduler(db(), t.lifecycle, { everyMs: 3_600_000, retentionDays: 14 });
    // Only what is due: tenants without a backup in the last hour (la and lb have one).
    const count = async () => Number((await db().withSchema('shared').selectFrom('tenant_backups').select((eb) => eb.fn.countAll<string>().as('n')).where('kind', '=', 'scheduled').executeTakeFirstOrThrow()).n);
    await Promise.all([one.runOnce(), two.runOnce()]);
    const ready = await db()
      .withSchema('shared')
      .selectFrom('tenants as t')
      .innerJoin('tenant_schemas as s', 's.schema_name', 't.schema_name')
      .select(['t.id', 't.slug'])
      .where('s.status', '=', 'ready')
      .where('t.status', '=', 'active')
      .execute();
    const scheduled = await db().withSchema('shared').selectFrom('tenant_backups').select(['tenant_slug']).where('kind', '=', 'scheduled').execute();
    const slugs = scheduled.map((b) => b.tenant_slug).sort();
    expect(slugs).toEqual([...new Set(slugs)]);
    expect(slugs).not.toContain('la');
    expect(slugs).toContain('la_copy');
    expect(slugs.length).toBe(ready.length - 2);
    await Promise.all([one.runOnce(), two.runOnce()]);
    expect(await count()).toBe(slugs.length);

    // A short schedule, started as the service starts it: la is backed up again within seconds.
    const laBackups = async () => (await t.lifecycle.backups('la')).length;
    const had = await laBackups();
    const fast = new BackupScheduler(db(), t.lifecycle, { everyMs: 1_000, retentionDays: 14 });
    fast.start();
    try {
      const deadline = Date.now() + 20_000;
      while ((await laBackups()) <= had && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await laBackups()).toBeGreaterThan(had);
    } finally {
      await fast.stop();
    }

    // Retention: backups older than 14 days go, with their files; each tenant keeps its newest.
    const la = await t.lifecycle.backups('la');
    const oldest = la[la.length - 1]!;
    await db().withSchema('shared').updateTable('tenant_backups').set({ created_at: new Date(Date.now() - 20 * 86_400_000) }).where('tenant_id', '=', oldest.tenant_id).where('id', '<>', la[0]!.id).execute();
    const before = readdirSync(t.backupsDir, { recursive: true }).map(String).filter((f) => f.includes('/')).length;
    expect(await t.lifecycle.prune(14)).toBe(la.length - 1);
    expect((await t.lifecycle.backups('la')).map((b) => b.id)).toEqual([la[0]!.id]);
    expect(readdirSync(t.backupsDir, { recursive: true }).map(String).filter((f) => f.includes('/')).length).toBe(before - (la.length - 1));
  });
});

describe('suspend, resume and delete', { timeout: 60_000 }, () => {
  it('a suspended tenant answers 403 at once, its neighbour does not notice; resumed, the same token works', async () => {
    expect((await call(t.tokens.la, 'GET', 'la/me')).statusCode).toBe(200);
    const suspended = await platform('PATCH', '/la', { status: 'suspended' });
    expect(suspended.statusCode).toBe(200);
    expect(suspended.json().tenant_status).toBe('suspended');
    const refused = await call(t.tokens.la, 'GET', 'la/me');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('tenant.suspended');
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/la/auth/login', payload: { email: 'admin@la.example', password: PASSWORD } })).statusCode).toBe(403);
    expect((await call(t.tokens.lb, 'GET', 'lb/me')).statusCode).toBe(200);
    expect((await platform('PATCH', '/la', { status: 'gone' })).statusCode).toBe(400);
    expect((await platform('PATCH', '/la', { status: 'active' })).json().tenant_status).toBe('active');
    expect((await call(t.tokens.la, 'GET', 'la/me')).statusCode).toBe(200);
    const audit = (await call(t.tokens.la, 'GET', 'la/audit-logs?entity_type=tenants')).json().items.map((a: { action: string }) => a.action);
    expect(audit).toEqual(expect.arrayContaining(['tenant.suspended', 'tenant.resumed']));
  });

  it('deletes a tenant after a final backup: schema, files and registration go; the backup can be imported back', async () => {
    const res = await platform('DELETE', '/la_copy');
    expect(res.statusCode, res.body).toBe(200);
    const { backup, id } = res.json();
    expect(backup).toMatchObject({ kind: 'final', tenant_slug: 'la_copy' });
    await nothingLeftOf('la_copy');
    expect((await platform('GET', '/la_copy')).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/la_copy/me', headers: bearer(t.tokens.la) })).statusCode).toBe(404);
    // Its backups stay listed under its id.
    expect((await platform('GET', `/${id}/backups`)).json().items.map((b: { id: string }) => b.id)).toContain(backup.id);
    const file = readdirSync(t.backupsDir, { recursive: true }).map(String).find((f) => f.endsWith(backup.id))!;
    const again = await importArchive(readFileSync(path.join(t.backupsDir, file)), 'slug=la_copy');
    expect(again.statusCode).toBe(201);
    expect((await login(t.app, 'la_copy', 'admin@la.example')).access_token).toBeTruthy();

    const quick = await platform('DELETE', '/lb_old?backup=false');
    expect(quick.json().backup).toBeNull();
    await nothingLeftOf('lb_old');
    expect((await platform('DELETE', '/lb_old')).statusCode).toBe(404);
    expect((await call(t.tokens.lb, 'GET', 'lb/me')).statusCode).toBe(200);
  });
});
