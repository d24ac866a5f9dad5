import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it, vi } from 'vitest';
import { voidAccountTokens } from '../src/auth/account-tokens.js';
import { PASSWORD_RESET_MAX_PER_HOUR } from '../src/auth/service.js';
import { sha256 } from '../src/auth/tokens.js';
import type { AuditActor } from '../src/audit/audit.js';
import { tenantDb } from '../src/db/database.js';
import { createTestApp } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

const t = useTenants(['alpha', 'beta'], { login: false });

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const tenantOf = (slug: string) => t.services.directory.resolve(slug);
const me = (slug: string, token: string) => t.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/me`, headers: bearer(token) });
const refresh = (slug: string, token: string, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/refresh`, payload: { refresh_token: token }, headers });
const requestReset = (slug: string, email: string) => t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/password-reset/request`, payload: { email } });
const confirmReset = (slug: string, token: string, password = 'a brand new passphrase') =>
  t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/password-reset/confirm`, payload: { token, new_password: password } });
const verifyEmail = (slug: string, token: string) => t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/verify-email`, payload: { token } });
const tokenFrom = (text: string) => /token=([A-Za-z0-9_-]+)/.exec(text)?.[1] ?? '';
const mailsTo = (to: string) => t.mailer.sent.filter((m) => m.to === to);
const settled = () => t.services.auth.settled();

const system: AuditActor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null };

async function auditRows(slug: string, action: string, sessionOrEntity: string) {
  return db(slug)
    .selectFrom('audit_logs')
    .select(['actor_user_id', 'actor_type', 'session_id', 'ip_address', 'user_agent', 'entity_type', 'entity_id'])
    .where('action', '=', action)
    .where((eb) => eb.or([eb('session_id', '=', sessionOrEntity), eb('entity_id', '=', sessionOrEntity)]))
    .execute();
}

/** Rotates `times` times; returns every refresh token of the chain (the first is the login's) and the last access token. */
async function chain(slug: string, email: string, times: number) {
  const first = await login(t.app, slug, email);
  const tokens = [first.refresh_token];
  let access = first.access_token;
  for (let i = 0; i < times; i++) {
    const res = await refresh(slug, tokens.at(-1)!);
    expect(res.statusCode).toBe(200);
    tokens.push(res.json().refresh_token);
    access = res.json().access_token;
  }
  return { sid: first.sid, tokens, access };
}

describe('refresh families', () => {
  it('any token a session retired, not only the last, revokes the whole session', async () => {
    for (const slug of ['alpha', 'beta']) {
      const { sid, tokens, access } = await chain(slug, `admin@${slug}.example`, 3);
      expect((await refresh(slug, tokens[0]!)).statusCode).toBe(401); // three rotations ago
      expect((await refresh(slug, tokens[3]!)).statusCode).toBe(401); // the newest died with the session
      expect((await me(slug, access)).statusCode).toBe(401);
      const session = await db(slug).selectFrom('user_sessions').select(['revoked_reason']).where('id', '=', sid).executeTakeFirstOrThrow();
      expect(session.revoked_reason).toBe('refresh_token_reuse');
      expect(await auditRows(slug, 'auth.refresh_reuse', sid)).toHaveLength(1);
    }
  });

  it('a made-up secret naming a rotated session is merely invalid: the session lives on', async () => {
    const { sid, tokens } = await chain('alpha', 'admin@alpha.example', 2);
    const forged = `rt_${sid}.${randomBytes(32).toString('base64url')}`;
    expect((await refresh('alpha', forged)).statusCode).toBe(401);
    // The same session id presented to the other tenant is unknown there.
    expect((await refresh('beta', tokens[1]!)).statusCode).toBe(401);
    expect(await auditRows('alpha', 'auth.refresh_reuse', sid)).toHaveLength(0);
    expect((await refresh('alpha', tokens[2]!)).statusCode).toBe(200);
  });

  it('tags each token for its session: a retired token moved to another session is merely invalid', async () => {
    const a = await chain('alpha', 'admin@alpha.example', 2);
    const b = await chain('alpha', 'admin@alpha.example', 1);
    // a's first, retired token with b's session id in front: its tag does not verify for b.
    const moved = a.tokens[0]!.replace(a.sid, b.sid);
    expect((await refresh('alpha', moved)).statusCode).toBe(401);
    expect(await auditRows('alpha', 'auth.refresh_reuse', b.sid)).toHaveLength(0);
    expect((await refresh('alpha', b.tokens[1]!)).statusCode).toBe(200);
    // Each token: rt_<session id>.<256 random bits and a 128-bit tag, base64url>.
    expect(a.tokens[2]).toMatch(new RegExp(`^rt_${a.sid}\\.[A-Za-z0-9_-]{64}$`));
  });

  it('still rotates a refresh token of the first release (untagged), and recognises the one just before it', async () => {
    const tokens = await login(t.app, 'beta', 'admin@beta.example');
    // A first-release token: rt_<session>.<43 characters>, stored by hash.
    const legacy = `rt_${tokens.sid}.${'A'.repeat(43)}`;
    await db('beta').updateTable('user_sessions').set({ refresh_token_hash: sha256(legacy) }).where('id', '=', tokens.sid).execute();
    const rotated = await refresh('beta', legacy);
    expect(rotated.statusCode).toBe(200);
    expect((await refresh('beta', legacy)).statusCode).toBe(401);
    expect(await auditRows('beta', 'auth.refresh_reuse', tokens.sid)).toHaveLength(1);
    expect((await refresh('beta', rotated.json().refresh_token)).statusCode).toBe(401);
  });
});

describe('audit of refresh rotations', () => {
  it('writes one auth.refresh row per rotation: the session\'s user, the session, the address and the agent; none for a refused token', async () => {
    const user = await seedUser(t, 'beta', { email: 'rotator@beta.example', roles: ['user'] });
    const session = await login(t.app, 'beta', user.email);
    const sid = session.sid;
    let refresh_token = session.refresh_token;
    for (let i = 0; i < 3; i++) {
      const res = await refresh('beta', refresh_token, { 'user-agent': `agent ${i}` });
      expect(res.statusCode).toBe(200);
      refresh_token = res.json().refresh_token;
    }
    expect((await refresh('beta', `rt_${sid}.${randomBytes(32).toString('base64url')}`)).statusCode).toBe(401);
    const rows = await auditRows('beta', 'auth.refresh', sid);
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => r.user_agent).sort()).toEqual(['agent 0', 'agent 1', 'agent 2']);
    for (const row of rows) {
      expect(row).toMatchObject({ actor_user_id: user.id, actor_type: 'user', session_id: sid, ip_address: '127.0.0.1', entity_type: 'user_sessions', entity_id: sid });
    }
    expect(await auditRows('alpha', 'auth.refresh', sid)).toHaveLength(0);
  });

  it('is written by the rotation\'s own statement: when the audit row cannot be written, the token is not rotated', async () => {
    const tokens = await login(t.app, 'alpha', 'admin@alpha.example');
    await sql`CREATE FUNCTION tenant_alpha.refuse_refresh_audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.action = 'auth.refresh' THEN RAISE EXCEPTION 'no audit'; END IF; RETURN NEW; END $$`.execute(t.db.database.db);
    await sql`CREATE TRIGGER refuse_refresh_audit BEFORE INSERT ON tenant_alpha.audit_logs FOR EACH ROW EXECUTE FUNCTION tenant_alpha.refuse_refresh_audit()`.execute(t.db.database.db);
    try {
      expect((await refresh('alpha', tokens.refresh_token)).statusCode).toBe(500);
      expect((await refresh('beta', (await login(t.app, 'beta', 'admin@beta.example')).refresh_token)).statusCode).toBe(200);
    } finally {
      await sql`DROP TRIGGER refuse_refresh_audit ON tenant_alpha.audit_logs`.execute(t.db.database.db);
      await sql`DROP FUNCTION tenant_alpha.refuse_refresh_audit()`.execute(t.db.database.db);
    }
    expect((await refresh('alpha', tokens.refresh_token)).statusCode).toBe(200); // still the current token
  });
});

describe('password-reset requests', () => {
  it('are answered before the account is looked up: 202 while the users table is locked, the mail once it is free', async () => {
    const user = await seedUser(t, 'alpha', { email: 'blocked@alpha.example' });
    const client = await t.db.database.pool.connect();
    const before = t.mailer.sent.length;
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE tenant_alpha.users IN ACCESS EXCLUSIVE MODE');
      for (const email of [user.email, 'nobody@alpha.example']) {
        const answer = await Promise.race([requestReset('alpha', email), new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 3_000))]);
        expect(answer === 'blocked' ? answer : answer.statusCode, email).toBe(202);
      }
      expect(t.mailer.sent.length).toBe(before);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    await settled();
    expect(t.mailer.sent.length).toBe(before + 1);
    expect(t.mailer.sent.at(-1)!.to).toBe(user.email);
  });

  it('answer known and unknown addresses alike', async () => {
    const user = await seedUser(t, 'beta', { email: 'known@beta.example' });
    const strip = (body: Record<string, unknown>) => ({ ...body, request_id: undefined });
    const known = await requestReset('beta', user.email);
    const unknown = await requestReset('beta', 'unknown@beta.example');
    expect([known.statusCode, unknown.statusCode]).toEqual([202, 202]);
    expect(strip(known.json())).toEqual(strip(unknown.json()));
    expect(Object.keys(known.headers).sort()).toEqual(Object.keys(unknown.headers).sort());
    await settled();
  });

  it(`send at most ${PASSWORD_RESET_MAX_PER_HOUR} mails per account and hour; further requests are answered alike and send nothing`, async () => {
    const alpha = await seedUser(t, 'alpha', { email: 'flooded@alpha.example' });
    const beta = await seedUser(t, 'beta', { email: 'flooded@alpha.example' });
    for (let i = 0; i < PASSWORD_RESET_MAX_PER_HOUR + 1; i++) expect((await requestReset('alpha', alpha.email)).statusCode).toBe(202);
    await settled();
    expect(mailsTo(alpha.email)).toHaveLength(PASSWORD_RESET_MAX_PER_HOUR);
    expect(await auditRows('alpha', 'auth.password_reset_limited', alpha.id)).toHaveLength(1);

    // Requests sent at once are counted one after the other.
    await Promise.all(Array.from({ length: 3 }, () => requestReset('alpha', alpha.email)));
    await settled();
    expect(mailsTo(alpha.email)).toHaveLength(PASSWORD_RESET_MAX_PER_HOUR);

    // The same address in another tenant is another account.
    expect((await requestReset('beta', beta.email)).statusCode).toBe(202);
    await settled();
    expect(mailsTo(beta.email)).toHaveLength(PASSWORD_RESET_MAX_PER_HOUR + 1);

    // An hour later the account may ask again.
    await db('alpha').updateTable('password_reset_tokens').set({ created_at: new Date(Date.now() - 3_601_000) }).where('user_id', '=', alpha.id).execute();
    await requestReset('alpha', alpha.email);
    await settled();
    expect(mailsTo(alpha.email)).toHaveLength(PASSWORD_RESET_MAX_PER_HOUR + 2);
  });

  it('report a failure of the work after the answer instead of leaving it unhandled', async () => {
    const user = await seedUser(t, 'beta', { email: 'mail-fails@beta.example' });
    const reported: unknown[] = [];
    t.services.auth.reportBackgroundErrors((error) => reported.push(error));
    const send = vi.spyOn(t.mailer, 'send').mockRejectedValueOnce(new Error('smtp down'));
    try {
      expect((await requestReset('beta', user.email)).statusCode).toBe(202);
      await settled();
    } finally {
      send.mockRestore();
      t.services.auth.reportBackgroundErrors(() => {});
    }
    expect(reported.map((e) => (e as Error).message)).toEqual(['smtp down']);
  });

  it('are finished before a closing instance lets go of its pool', async () => {
    const second = await createTestApp({ database: t.db });
    const user = await seedUser(t, 'alpha', { email: 'at-shutdown@alpha.example' });
    expect((await second.app.inject({ method: 'POST', url: '/api/v1/tenants/alpha/auth/password-reset/request', payload: { email: user.email } })).statusCode).toBe(202);
    expect(second.mailer.sent).toHaveLength(0);
    await second.app.close();
    expect(second.mailer.sent.map((m) => m.to)).toEqual([user.email]);
  });
});

describe('tokens voided by password and email changes', () => {
  async function resetTokens(slug: string, email: string, count: number): Promise<string[]> {
    for (let i = 0; i < count; i++) await requestReset(slug, email);
    await settled();
    return mailsTo(email).slice(-count).map((m) => tokenFrom(m.text));
  }

  it('a password change voids outstanding reset links, keeps verification links, and ends the other sessions only', async () => {
    const user = await seedUser(t, 'alpha', { email: 'changes@alpha.example', verified: false });
    const bystander = await seedUser(t, 'alpha', { email: 'bystander@alpha.example' });
    const [resetLink] = await resetTokens('alpha', user.email, 1);
    const [otherLink] = await resetTokens('alpha', bystander.email, 1);
    const here = await login(t.app, 'alpha', user.email);
    const there = await login(t.app, 'alpha', user.email);
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/alpha/me/email-verification', headers: bearer(here.access_token) });
    const verifyLink = tokenFrom(mailsTo(user.email).at(-1)!.text);

    const changed = await t.app.inject({ method: 'PUT', url: '/api/v1/tenants/alpha/me/password', headers: bearer(here.access_token), payload: { current_password: PASSWORD, new_password: 'another long passphrase' } });
    expect(changed.statusCode).toBe(204);
    expect((await confirmReset('alpha', resetLink!)).statusCode).toBe(400);
    expect((await me('alpha', here.access_token)).statusCode).toBe(200);
    expect((await me('alpha', there.access_token)).statusCode).toBe(401);
    expect((await verifyEmail('alpha', verifyLink)).statusCode).toBe(204);
    expect((await confirmReset('alpha', otherLink!)).statusCode).toBe(204); // another user's link is untouched
  });

  it('a confirmed reset voids the other reset links and ends every session', async () => {
    const user = await seedUser(t, 'beta', { email: 'two-links@beta.example' });
    const [first, second] = await resetTokens('beta', user.email, 2);
    const a = await login(t.app, 'beta', user.email);
    const b = await login(t.app, 'beta', user.email);
    expect((await confirmReset('beta', second!)).statusCode).toBe(204);
    expect((await confirmReset('beta', first!, 'a third passphrase here')).statusCode).toBe(400);
    expect((await me('beta', a.access_token)).statusCode).toBe(401);
    expect((await me('beta', b.access_token)).statusCode).toBe(401);
    await login(t.app, 'beta', user.email, 'a brand new passphrase');
  });

  it('voidAccountTokens uses up every outstanding reset and verification token of one user, in the caller\'s transaction', async () => {
    const user = await seedUser(t, 'alpha', { email: 'void-me@alpha.example', verified: false });
    const neighbour = await seedUser(t, 'alpha', { email: 'neighbour@alpha.example' });
    const twin = await seedUser(t, 'beta', { email: 'void-me@alpha.example' });
    const [userReset] = await resetTokens('alpha', user.email, 1);
    const [neighbourReset] = await resetTokens('alpha', neighbour.email, 1);
    const [twinReset] = await resetTokens('beta', twin.email, 1);
    const tenant = await tenantOf('alpha');
    await t.services.auth.requestEmailVerification(tenant, user.id, system);
    const verifyLink = tokenFrom(mailsTo(user.email).at(-1)!.text);

    // A rolled-back transaction voids nothing.
    await expect(
      db('alpha').transaction().execute(async (trx) => {
        await voidAccountTokens(trx, user.id);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    const voided = await db('alpha').transaction().execute((trx) => voidAccountTokens(trx, user.id));
    expect(voided).toEqual({ passwordReset: 1, emailVerification: 1 });

    expect((await confirmReset('alpha', userReset!)).statusCode).toBe(400);
    expect((await verifyEmail('alpha', verifyLink)).statusCode).toBe(400);
    expect((await confirmReset('alpha', neighbourReset!)).statusCode).toBe(204);
    expect((await confirmReset('beta', twinReset!)).statusCode).toBe(204);
  });

  it('emailChanged mails a verification link to the new address and a notice to the old one', async () => {
    const user = await seedUser(t, 'beta', { email: 'old-address@beta.example' });
    const tenant = await tenantOf('beta');
    await db('beta').transaction().execute(async (trx) => {
      await trx.updateTable('users').set({ email: 'new-address@beta.example', is_email_verified: false, email_verified_at: null }).where('id', '=', user.id).execute();
      await voidAccountTokens(trx, user.id);
    });
    await t.services.auth.emailChanged(tenant, { id: user.id, oldEmail: user.email, newEmail: 'new-address@beta.example' }, system);

    const [notice] = mailsTo(user.email);
    expect(notice!.text).toContain('new-address@beta.example');
    expect(notice!.text).toMatch(/if this was not you, contact your administrator/i);
    expect(tokenFrom(notice!.text)).toBe('');
    const [verification] = mailsTo('new-address@beta.example');
    expect((await verifyEmail('alpha', tokenFrom(verification!.text))).statusCode).toBe(400);
    expect((await verifyEmail('beta', tokenFrom(verification!.text))).statusCode).toBe(204);
    const row = await db('beta').selectFrom('users').select(['is_email_verified']).where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.is_email_verified).toBe(true);
  });

  it('emailChanged reports a mail it cannot send and still sends the other', async () => {
    const user = await seedUser(t, 'alpha', { email: 'was@alpha.example' });
    await db('alpha').updateTable('users').set({ email: 'now@alpha.example', is_email_verified: false }).where('id', '=', user.id).execute();
    const reported: unknown[] = [];
    t.services.auth.reportBackgroundErrors((error) => reported.push(error));
    const send = vi.spyOn(t.mailer, 'send').mockRejectedValueOnce(new Error('mailbox full'));
    try {
      await t.services.auth.emailChanged(await tenantOf('alpha'), { id: user.id, oldEmail: user.email, newEmail: 'now@alpha.example' }, system);
    } finally {
      send.mockRestore();
      t.services.auth.reportBackgroundErrors(() => {});
    }
    expect(reported.map((e) => (e as Error).message)).toEqual(['mailbox full']);
    expect(mailsTo(user.email)).toHaveLength(1);
  });
});
