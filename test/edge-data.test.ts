import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { requestFingerprint } from '../src/http/idempotency.js';
import { createMailer } from '../src/mail/mailer.js';
import { useTenants } from './support/fixture.js';
import { caller, upload } from './support/records.js';

/* SPEC §10 "Secrets" and "Edge" on tenant data: idempotency fingerprints, the attachment quota, the channel-config audit. */

const t = useTenants(['ea', 'eb']);
let call: ReturnType<typeof caller>;

beforeAll(() => {
  call = caller(t.app);
});

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);

describe('idempotency keys', () => {
  it('store an HMAC of the request under the server key, not a plain hash a reader could test passwords against', async () => {
    const body = { email: 'hmac@ea.example', password: 'a plaintext password 123' };
    const first = await call(t.tokens.ea, 'POST', 'ea/users', body, { 'idempotency-key': 'user-hmac' });
    expect(first.statusCode).toBe(201);
    const row = await db('ea').selectFrom('idempotency_keys').select(['request_hash', 'path']).where('key', '=', 'user-hmac').executeTakeFirstOrThrow();
    const text = `POST ${row.path} ${JSON.stringify(body)}`;
    expect(row.request_hash).not.toBe(createHash('sha256').update(text).digest('hex'));
    expect(row.request_hash).toBe(requestFingerprint(t.app.idempotencyKey, 'POST', row.path, JSON.stringify(body)));
    expect(t.app.idempotencyKey).toHaveLength(32);
    // Replays still match: the same request gets the stored answer, another one 422.
    const replay = await call(t.tokens.ea, 'POST', 'ea/users', body, { 'idempotency-key': 'user-hmac' });
    expect(replay.statusCode).toBe(201);
    expect(replay.json().id).toBe(first.json().id);
    expect((await call(t.tokens.ea, 'POST', 'ea/users', { ...body, password: 'another password 456' }, { 'idempotency-key': 'user-hmac' })).statusCode).toBe(422);
  });

  it("purge the tenant's expired rows on a claim, whatever their key, and leave other tenants' rows to their own claims", async () => {
    const expired = { method: 'POST', path: '/x', request_hash: 'h', status_code: 201, expires_at: new Date(Date.now() - 1000) };
    await db('ea').insertInto('idempotency_keys').values([{ ...expired, scope: 'user:old', key: 'stale-1' }, { ...expired, scope: 'api_key:old', key: 'stale-2' }]).execute();
    await db('ea').insertInto('idempotency_keys').values({ ...expired, scope: 'user:live', key: 'fresh', expires_at: new Date(Date.now() + 3_600_000) }).execute();
    await db('eb').insertInto('idempotency_keys').values({ ...expired, scope: 'user:old', key: 'stale-b' }).execute();

    expect((await call(t.tokens.ea, 'POST', 'ea/notes', { title: 'n', content: 'c' }, { 'idempotency-key': 'purging' })).statusCode).toBe(201);
    const keysOf = async (slug: string) => (await db(slug).selectFrom('idempotency_keys').select('key').execute()).map((r) => r.key).sort();
    expect(await keysOf('ea')).toEqual(['fresh', 'purging', 'user-hmac']);
    expect(await keysOf('eb')).toEqual(['stale-b']);
    expect((await call(t.tokens.eb, 'POST', 'eb/notes', { title: 'n', content: 'c' }, { 'idempotency-key': 'b-claim' })).statusCode).toBe(201);
    expect(await keysOf('eb')).toEqual(['b-claim']);
  });
});

describe('attachments.quota_mb', () => {
  const files = () => readdirSync(t.attachmentsDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
  const count = async (slug: string) => Number((await db(slug).selectFrom('attachments').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const KB600 = () => randomBytes(600 * 1024);

  it('is a tenant setting, 1024 MB by default, validated', async () => {
    const res = await call(t.tokens.ea, 'GET', 'ea/settings/attachments.quota_mb');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ key: 'attachments.quota_mb', value: 1024, type: 'number', category: 'attachments' });
    const bad = await call(t.tokens.ea, 'PUT', 'ea/settings/attachments.quota_mb', { value: 0 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toEqual([{ field: 'value', reason: 'must be at least 1' }]);
  });

  it('refuses an upload that would pass the quota with 413 and keeps nothing; versions count; the other tenant is unaffected', async () => {
    expect((await call(t.tokens.ea, 'PUT', 'ea/settings/attachments.quota_mb', { value: 1 })).statusCode).toBe(200);
    const first = await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'one.bin', content: KB600() });
    expect(first.statusCode).toBe(201);
    const before = { files: files().length, rows: await count('ea') };

    const second = await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'two.bin', content: KB600() });
    expect(second.statusCode).toBe(413);
    expect(second.headers['content-type']).toContain('application/problem+json');
    expect(second.json().detail).toContain('attachments.quota_mb');
    // A new version of the kept file counts the same way.
    expect((await upload(t.app, t.tokens.ea, `ea/attachments/${first.json().id}/versions`, { content: KB600() })).statusCode).toBe(413);
    expect({ files: files().length, rows: await count('ea') }).toEqual(before);
    expect(files().some((f) => f.includes('.partial'))).toBe(false);

    // Tenant eb keeps its default quota.
    for (let i = 0; i < 3; i++) expect((await upload(t.app, t.tokens.eb, 'eb/attachments', { name: `b${i}.bin`, content: KB600() })).statusCode).toBe(201);

    // What is left still fits; a full quota refuses even a byte.
    expect((await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'rest.bin', content: randomBytes(1024 * 1024 - 600 * 1024) })).statusCode).toBe(201);
    expect((await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'byte.bin', content: Buffer.from('x') })).statusCode).toBe(413);

    // A deleted file still counts until it is purged (its bytes are still kept).
    expect((await call(t.tokens.ea, 'DELETE', `ea/attachments/${first.json().id}`)).statusCode).toBe(204);
    expect((await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'byte.bin', content: Buffer.from('x') })).statusCode).toBe(413);
    expect((await call(t.tokens.ea, 'POST', `ea/attachments/${first.json().id}/purge`)).statusCode).toBe(204);
    expect((await upload(t.app, t.tokens.ea, 'ea/attachments', { name: 'three.bin', content: KB600() })).statusCode).toBe(201);
  });

  it('lets only one of two concurrent uploads take the last room', async () => {
    expect((await call(t.tokens.eb, 'PUT', 'eb/settings/attachments.quota_mb', { value: 3 })).statusCode).toBe(200);
    // eb holds 1800 KB of 3072: room for one more 600 KB file... and a second one; not a third.
    const results = await Promise.all([0, 1, 2, 3].map((i) => upload(t.app, t.tokens.eb, 'eb/attachments', { name: `c${i}.bin`, content: KB600() })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 201, 413, 413]);
    const used = await db('eb').selectFrom('attachments').select((eb) => eb.fn.sum<string>('size_bytes').as('bytes')).where('purged_at', 'is', null).executeTakeFirstOrThrow();
    expect(Number(used.bytes)).toBeLessThanOrEqual(3 * 1024 * 1024);
  });
});

describe('channel configs', () => {
  it('a restore that drops the default flag writes an audit row for that change', async () => {
    const create = (slug: string, token: string, name: string) => call(token, 'POST', `${slug}/channel-configs`, { channel: 'email', name, config: { host: 'smtp.example.com' }, is_default: true });
    const old = (await create('ea', t.tokens.ea, 'Old mail')).json();
    expect((await call(t.tokens.ea, 'DELETE', `ea/channel-configs/${old.id}`)).statusCode).toBe(204);
    const current = (await create('ea', t.tokens.ea, 'New mail')).json();
    const restored = await call(t.tokens.ea, 'POST', `ea/channel-configs/${old.id}/restore`);
    expect(restored.statusCode).toBe(200);
    expect(restored.json().is_default).toBe(false);

    const audit = (await call(t.tokens.ea, 'GET', `ea/audit-logs?entity_id=${old.id}&action=channel_configs.update&page_size=10`)).json();
    expect(audit.items).toEqual([
      expect.objectContaining({ action: 'channel_configs.update', entity_id: old.id, before: { is_default: true }, after: { is_default: false }, metadata: expect.objectContaining({ default_id: current.id }) }),
    ]);
    // A restore with no default beside it keeps the flag and writes no such row (tenant eb).
    const lone = (await create('eb', t.tokens.eb, 'Only mail')).json();
    expect((await call(t.tokens.eb, 'DELETE', `eb/channel-configs/${lone.id}`)).statusCode).toBe(204);
    expect((await call(t.tokens.eb, 'POST', `eb/channel-configs/${lone.id}/restore`)).json().is_default).toBe(true);
    expect((await call(t.tokens.eb, 'GET', `eb/audit-logs?entity_id=${lone.id}&action=channel_configs.update`)).json().total).toBe(0);
  });
});

describe('mail outbox', () => {
  it('writes .eml files readable by the service user only (0600)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-outbox-mode-'));
    try {
      const mailer = createMailer({ smtpUrl: undefined, outboxDir: path.join(dir, 'outbox') });
      await mailer.send({ to: 'ada@example.com', subject: 'Reset', text: 'https://app.example/reset?token=secret' });
      const [file] = await readdir(path.join(dir, 'outbox'));
      expect((await stat(path.join(dir, 'outbox', file!))).mode & 0o777).toBe(0o600);
      expect((await stat(path.join(dir, 'outbox'))).mode & 0o077).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
