import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { rotateChannelSecrets, rotationTargets, type RotateProgress } from '../src/records/rotate.js';
import { channelSecretContext, SecretBox } from '../src/records/secrets.js';

const CTX = 'channel_configs:tenant_test:00000000-0000-4000-8000-000000000000';
import { createTestApp, TEST_SECRET, type TestApp } from './support/app.js';
import { runTs } from './support/process.js';
import { bearer, login, seedTenant } from './support/tenants.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const keyC = randomBytes(32);
const keyD = randomBytes(32);
const idOf = (key: Buffer) => new SecretBox([key]).currentKeyId;
const keyIdIn = (ciphertext: string) => ciphertext.split('.')[1];

/** Replaces one base64url segment of a ciphertext by a same-length one with its first byte flipped. */
function tamper(ciphertext: string, segment: number): string {
  const parts = ciphertext.split('.');
  const bytes = Buffer.from(parts[segment]!, 'base64url');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[segment] = bytes.toString('base64url');
  return parts.join('.');
}

describe('SecretBox', () => {
  it('round-trips a value and writes v1.<key id>.<iv>.<tag>.<data>, a fresh IV each time', () => {
    const box = new SecretBox([keyA]);
    const value = { password: 'hunter2', nested: { list: [1, 'two', null] } };
    const one = box.encrypt(value, CTX);
    const two = box.encrypt(value, CTX);
    expect(one.split('.')).toHaveLength(5);
    expect(one.startsWith(`v1.${idOf(keyA)}.`)).toBe(true);
    expect(one).not.toBe(two);
    expect(one).not.toContain('hunter2');
    expect(box.decrypt(one, CTX)).toEqual(value);
    expect(box.decrypt(two, CTX)).toEqual(value);
    expect(box.isCurrent(one)).toBe(true);
  });

  it('encrypts with the first key and decrypts with any configured key', () => {
    const old = new SecretBox([keyA]).encrypt({ token: 't' }, CTX);
    const box = new SecretBox([keyB, keyA]);
    expect(box.currentKeyId).toBe(idOf(keyB));
    expect(box.isCurrent(old)).toBe(false);
    expect(box.decrypt(old, CTX)).toEqual({ token: 't' });
    expect(keyIdIn(box.encrypt({ token: 't' }, CTX))).toBe(idOf(keyB));
  });

  it('refuses a tampered ciphertext (data, tag or iv)', () => {
    const box = new SecretBox([keyA]);
    const text = box.encrypt({ password: 'hunter2' }, CTX);
    for (const segment of [2, 3, 4]) expect(() => box.decrypt(tamper(text, segment), CTX), `segment ${segment}`).toThrow();
    expect(() => box.decrypt('not a ciphertext', CTX)).toThrow(/not a secret this service wrote/);
    expect(() => box.decrypt(text.replace(/^v1\./, 'v2.'), CTX)).toThrow(/not a secret this service wrote/);
    // A truncated tag (GCM would accept 4 bytes by default) and extra parts are refused too.
    const parts = text.split('.');
    const shortTag = [...parts.slice(0, 3), Buffer.from(parts[3]!, 'base64url').subarray(0, 4).toString('base64url'), parts[4]].join('.');
    expect(() => box.decrypt(shortTag, CTX)).toThrow();
    expect(() => box.decrypt(`${text}.extra`, CTX)).toThrow(/not a secret this service wrote/);
  });

  it('binds a ciphertext to its context: copied to another row or tenant, it does not decrypt', () => {
    const box = new SecretBox([keyA]);
    const text = box.encrypt({ password: 'hunter2' }, channelSecretContext('tenant_alpha', '00000000-0000-4000-8000-000000000001'));
    expect(box.decrypt(text, channelSecretContext('tenant_alpha', '00000000-0000-4000-8000-000000000001'))).toEqual({ password: 'hunter2' });
    expect(() => box.decrypt(text, channelSecretContext('tenant_alpha', '00000000-0000-4000-8000-000000000002'))).toThrow();
    expect(() => box.decrypt(text, channelSecretContext('tenant_beta', '00000000-0000-4000-8000-000000000001'))).toThrow();
  });

  it('names the key id when a ciphertext was made with a key it does not hold', () => {
    const text = new SecretBox([keyC]).encrypt({ password: 'hunter2' }, CTX);
    expect(() => new SecretBox([keyA, keyB]).decrypt(text, CTX)).toThrow(new RegExp(`encrypted with key ${idOf(keyC)}, which is not configured`));
  });

  it('needs a key', () => {
    expect(() => new SecretBox([])).toThrow(/needs a key/);
  });
});

const MAIL = { channel: 'email', name: 'Mail', config: { host: 'smtp.example.com', password: 'hunter2' } };

/** Two tenants whose channel configs were created through the API by an instance encrypting with keyA. */
async function twoTenantsWithSecrets(t: TestApp): Promise<void> {
  for (const slug of ['alpha', 'beta']) {
    const admin = await seedTenant(t, slug);
    const token = (await login(t.app, slug, admin.email)).access_token;
    const create = async (payload: object) => {
      const res = await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/channel-configs`, headers: bearer(token), payload });
      expect(res.statusCode, res.body).toBe(201);
      expect(JSON.stringify(res.json())).not.toContain('hunter2');
    };
    await create(MAIL);
    if (slug === 'alpha') {
      await create({ channel: 'sms', name: 'Texts', config: { provider: 'twilio', from: '+15550100', api_key: 'sms-key' } });
      // No secret fields: encrypted_secrets stays null and rotation leaves the row alone.
      await create({ channel: 'webhook', name: 'Hook', config: { url: 'https://hooks.example.com/in' } });
    }
  }
}

async function channelRows(t: TestApp, schema: string) {
  return tenantDb(t.db.database.db, schema).selectFrom('channel_configs').select(['id', 'name', 'encrypted_secrets', 'version', 'updated_at']).orderBy('name').execute();
}

describe('rotateChannelSecrets', { timeout: 60_000 }, () => {
  let t: TestApp;
  const schemas = ['tenant_alpha', 'tenant_beta'];

  beforeAll(async () => {
    t = await createTestApp({ secrets: new SecretBox([keyA]) });
    await twoTenantsWithSecrets(t);
  });
  afterAll(async () => t?.close());

  it('lists the ready tenant schemas holding channel configs', async () => {
    expect(await rotationTargets(t.db.database.db)).toEqual({ ready: schemas, notReady: [] });
  });

  it("re-encrypts every tenant's secrets under the current key, leaving version and updated_at alone", async () => {
    const before = { alpha: await channelRows(t, 'tenant_alpha'), beta: await channelRows(t, 'tenant_beta') };
    for (const row of [...before.alpha, ...before.beta].filter((r) => r.encrypted_secrets !== null)) expect(keyIdIn(row.encrypted_secrets!)).toBe(idOf(keyA));

    const progress: RotateProgress[] = [];
    const result = await rotateChannelSecrets(t.db.database.db, new SecretBox([keyB, keyA]), schemas, (p) => progress.push(p));
    expect(result).toEqual({ schemas: 2, rotated: 3, failed: [] });
    expect(progress).toEqual([
      { done: 1, total: 2, schema: 'tenant_alpha', ok: true, rotated: 2 },
      { done: 2, total: 2, schema: 'tenant_beta', ok: true, rotated: 1 },
    ]);

    const onlyB = new SecretBox([keyB]);
    for (const [tenant, rows] of Object.entries(before)) {
      const after = await channelRows(t, `tenant_${tenant}`);
      expect(after.map((r) => r.id), tenant).toEqual(rows.map((r) => r.id));
      for (const [i, row] of after.entries()) {
        expect(row.version, `${tenant} ${row.name} version`).toBe(rows[i]!.version);
        expect(row.updated_at, `${tenant} ${row.name} updated_at`).toEqual(rows[i]!.updated_at);
        if (row.name === 'Hook') {
          expect(row.encrypted_secrets).toBeNull();
          continue;
        }
        expect(row.encrypted_secrets, `${tenant} ${row.name}`).not.toBe(rows[i]!.encrypted_secrets);
        expect(keyIdIn(row.encrypted_secrets!), `${tenant} ${row.name}`).toBe(idOf(keyB));
      }
      const mail = after.find((r) => r.name === 'Mail')!;
      expect(onlyB.decrypt(mail.encrypted_secrets!, channelSecretContext(`tenant_${tenant}`, mail.id)), tenant).toEqual({ password: 'hunter2' });
    }
    const texts = (await channelRows(t, 'tenant_alpha')).find((r) => r.name === 'Texts')!;
    expect(onlyB.decrypt(texts.encrypted_secrets!, channelSecretContext('tenant_alpha', texts.id))).toEqual({ api_key: 'sms-key' });
  });

  it('rotates nothing on a second run', async () => {
    const before = await channelRows(t, 'tenant_beta');
    expect(await rotateChannelSecrets(t.db.database.db, new SecretBox([keyB, keyA]), schemas)).toEqual({ schemas: 2, rotated: 0, failed: [] });
    expect(await channelRows(t, 'tenant_beta')).toEqual(before);
  });

  it('an instance holding only the new key keeps working with the rotated secrets', async () => {
    const next = await createTestApp({ database: t.db, secrets: new SecretBox([keyB]) });
    try {
      const token = (await login(next.app, 'beta', 'admin@beta.example')).access_token;
      const mail = (await channelRows(t, 'tenant_beta')).find((r) => r.name === 'Mail')!;
      // A config update merges into the stored secrets: it has to decrypt them.
      const res = await next.app.inject({ method: 'PATCH', url: `/api/v1/tenants/beta/channel-configs/${mail.id}`, headers: bearer(token), payload: { config: { from: 'noreply@example.com' } } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().config).toEqual({ host: 'smtp.example.com', from: 'noreply@example.com', password: '[redacted]' });
      const after = (await channelRows(t, 'tenant_beta')).find((r) => r.name === 'Mail')!;
      expect(new SecretBox([keyB]).decrypt(after.encrypted_secrets!, channelSecretContext('tenant_beta', after.id))).toEqual({ password: 'hunter2' });
    } finally {
      await next.close();
    }
  });

  it('reports a schema holding a secret under an unknown key, rolls that schema back and goes on with the others', async () => {
    const alpha = tenantDb(t.db.database.db, 'tenant_alpha');
    // The last row in rotation order (by id): the other secret of alpha is re-encrypted before it fails.
    const last = await alpha.selectFrom('channel_configs').select('id').where('encrypted_secrets', 'is not', null).orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow();
    const lost = new SecretBox([keyC]).encrypt({ secret: 'lost' }, CTX);
    await alpha.updateTable('channel_configs').set({ encrypted_secrets: lost }).where('id', '=', last.id).execute();
    const alphaBefore = await channelRows(t, 'tenant_alpha');

    // keyD is the new current key; keyB (which made every other secret) is still configured; keyC is not.
    const result = await rotateChannelSecrets(t.db.database.db, new SecretBox([keyD, keyB]), schemas);
    expect(result.schemas).toBe(2);
    expect(result.rotated).toBe(1);
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]!.schema).toBe('tenant_alpha');
    expect(result.failed[0]!.error).toContain(last.id);
    expect(result.failed[0]!.error).toContain(`encrypted with key ${idOf(keyC)}, which is not configured`);

    // One transaction per schema: alpha is as it was (its other secret still under keyB), beta is rotated.
    expect(await channelRows(t, 'tenant_alpha')).toEqual(alphaBefore);
    const beta = (await channelRows(t, 'tenant_beta')).find((r) => r.name === 'Mail')!;
    expect(keyIdIn(beta.encrypted_secrets!)).toBe(idOf(keyD));
    expect(new SecretBox([keyD]).decrypt(beta.encrypted_secrets!, channelSecretContext('tenant_beta', beta.id))).toEqual({ password: 'hunter2' });
  });

  it('reports a schema it cannot read (missing, or not a tenant schema name) without stopping', async () => {
    const result = await rotateChannelSecrets(t.db.database.db, new SecretBox([keyD, keyB]), ['shared', 'tenant_nowhere', 'tenant_beta']);
    expect(result.schemas).toBe(3);
    expect(result.rotated).toBe(0);
    expect(result.failed.map((f) => f.schema)).toEqual(['shared', 'tenant_nowhere']);
    expect(result.failed[0]!.error).toMatch(/reserved/);
    expect(result.failed[1]!.error).toMatch(/does not exist/);
  });
});

describe('system-service secrets rotate', { timeout: 120_000 }, () => {
  let t: TestApp;
  let dataDir: string;
  const b64 = (key: Buffer) => key.toString('base64');
  const cli = (args: string[], keys: { current: Buffer; previous: Buffer[] }) =>
    runTs('src/cli.ts', args, {
      DATABASE_URL: t.db.url,
      DATA_DIR: dataDir,
      JWT_SECRET_KEY: TEST_SECRET,
      CHANNEL_SECRETS_KEY: b64(keys.current),
      CHANNEL_SECRETS_PREVIOUS_KEYS: keys.previous.map(b64).join(','),
      LOG_LEVEL: 'warn',
    });

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'system-service-secrets-'));
    t = await createTestApp({ secrets: new SecretBox([keyA]) });
    await twoTenantsWithSecrets(t);
  });
  afterAll(async () => {
    await t?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('re-encrypts every ready tenant schema, then finds nothing left to do', async () => {
    const first = await cli(['secrets', 'rotate'], { current: keyB, previous: [keyA] });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`re-encrypting channel secrets under key ${idOf(keyB)} in 2 tenant schemas`);
    expect(first.stdout).toMatch(/\[1\/2\] tenant_alpha ok, 2 re-encrypted/);
    expect(first.stdout).toMatch(/\[2\/2\] tenant_beta ok, 1 re-encrypted/);
    expect(first.stdout).toMatch(/2 tenant schemas: 3 secrets re-encrypted, 0 failed/);
    for (const schema of ['tenant_alpha', 'tenant_beta']) {
      for (const row of await channelRows(t, schema)) if (row.encrypted_secrets) expect(keyIdIn(row.encrypted_secrets), `${schema} ${row.name}`).toBe(idOf(keyB));
    }

    const again = await cli(['secrets', 'rotate'], { current: keyB, previous: [keyA] });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/2 tenant schemas: 0 secrets re-encrypted, 0 failed/);
  });

  it('exits 1 naming the schema that failed and one that is not ready, after rotating the rest', async () => {
    const alpha = tenantDb(t.db.database.db, 'tenant_alpha');
    await alpha.updateTable('channel_configs').set({ encrypted_secrets: new SecretBox([keyC]).encrypt({ api_key: 'lost' }, CTX) }).where('name', '=', 'Texts').execute();
    const shared = t.db.database.db.withSchema('shared');
    // A tenant whose last migration failed: its channel configs are not rotated, and that is said.
    await seedTenant(t, 'gamma');
    await shared.updateTable('tenant_schemas').set({ status: 'failed' }).where('schema_name', '=', 'tenant_gamma').execute();

    const result = await cli(['secrets', 'rotate'], { current: keyD, previous: [keyB] });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/\[1\/2\] tenant_alpha FAILED: channel config [0-9a-f-]{36}: the secret was encrypted with key/);
    expect(result.stdout).toMatch(/\[2\/2\] tenant_beta ok, 1 re-encrypted/);
    expect(result.stdout).toMatch(/2 tenant schemas: 1 secrets re-encrypted, 1 failed/);
    expect(result.stdout).toContain(`  tenant_alpha: channel config`);
    expect(result.stdout).toContain(idOf(keyC));
    expect(result.stdout).toContain('  tenant_gamma: skipped, schema is failed');
    expect(result.stdout).toContain('keep the previous keys in CHANNEL_SECRETS_PREVIOUS_KEYS');
    const beta = (await channelRows(t, 'tenant_beta')).find((r) => r.name === 'Mail')!;
    expect(keyIdIn(beta.encrypted_secrets!)).toBe(idOf(keyD));
  });

  it('refuses bad usage and lists the command in its help', async () => {
    const keys = { current: keyB, previous: [] };
    const unknown = await cli(['secrets', 'spin'], keys);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^unknown secrets command: spin/);
    expect((await cli(['secrets'], keys)).code).toBe(2);
    const extra = await cli(['secrets', 'rotate', 'tenant_alpha'], keys);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/^unexpected argument: tenant_alpha/);
    const help = await cli(['--help'], keys);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/secrets rotate +re-encrypt channel secrets under the current CHANNEL_SECRETS_KEY/);
  });
});
