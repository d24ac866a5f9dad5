import { authenticator } from 'otplib';
import { describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/**
 * SPEC section 19, multi-factor authentication, against a real database and two tenants: TOTP
 * enrolment, the login step-up on every login path, replays and drift, recovery codes, the
 * `auth.mfa` setting, the lockout, an administrator's reset under the out-rank rule, and the
 * audit rows and events of each step.
 */
const t = useTenants(['ma', 'mb']);

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const post = (slug: string, path: string, payload: object, token?: string) =>
  t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/${path}`, payload, ...(token ? { headers: bearer(token) } : {}) });

/** A TOTP code of `secret` for the step `offset` steps from now. */
const codeAt = (secret: string, offset = 0) => authenticator.clone({ epoch: Date.now() + offset * 30_000 }).generate(secret);

/** Waits, if needed, until at least 4 s remain in the current 30-second step (codes computed now stay in their step). */
async function awayFromStepEdge() {
  const left = 30_000 - (Date.now() % 30_000);
  if (left < 4000) await new Promise((r) => setTimeout(r, left + 100));
}

async function setSetting(slug: string, key: string, value: unknown) {
  await db(slug).updateTable('settings').set({ value: JSON.stringify(value) }).where('key', '=', key).execute();
  await t.services.changes.committed(await t.services.directory.resolve(slug), [{ kind: 'settings' }]);
}

let n = 0;
/** A user of `slug` with TOTP enrolled and confirmed (at the previous step: drift), with its secret and recovery codes. */
async function enrolled(slug = 'ma', roles = ['user']) {
  const user = await seedUser(t, slug, { email: `m${++n}@${slug}.example`, roles });
  const token = (await login(t.app, slug, user.email)).access_token;
  const started = await post(slug, 'me/mfa/totp', { password: PASSWORD }, token);
  expect(started.statusCode, started.body).toBe(201);
  const { secret, otpauth_url } = started.json();
  expect(otpauth_url).toMatch(/^otpauth:\/\/totp\/.*secret=/);
  await awayFromStepEdge();
  const confirmed = await post(slug, 'me/mfa/totp/confirm', { code: codeAt(secret, -1) }, token);
  expect(confirmed.statusCode, confirmed.body).toBe(200);
  const codes = confirmed.json().recovery_codes as string[];
  return { ...user, token, secret: secret as string, codes };
}

const passwordLogin = (slug: string, email: string, path = 'auth/login') => post(slug, path, { email, password: PASSWORD });

describe('TOTP enrolment', () => {
  it('starts pending, confirms with a code, returns ten recovery codes once, and keeps the secret encrypted', async () => {
    const user = await seedUser(t, 'ma', { email: 'enrol@ma.example' });
    const token = (await login(t.app, 'ma', user.email)).access_token;
    const started = (await post('ma', 'me/mfa/totp', { password: PASSWORD }, token)).json();
    expect((await t.app.inject({ url: '/api/v1/tenants/ma/me/mfa', headers: bearer(token) })).json()).toMatchObject({ mode: 'optional', totp: { status: 'pending' }, recovery_codes_remaining: 0 });

    const row = await db('ma').selectFrom('mfa_totp').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.encrypted_secret).not.toContain(started.secret);
    expect(row.encrypted_secret).toMatch(/^v1\./);
    expect(row.confirmed_at).toBeNull();

    // A pending enrolment is no factor yet: the password alone signs in.
    expect((await passwordLogin('ma', user.email)).json()).toHaveProperty('access_token');

    const wrong = await post('ma', 'me/mfa/totp/confirm', { code: '000000' === codeAt(started.secret) ? '111111' : '000000' }, token);
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json()).toMatchObject({ code: 'mfa.invalid_code', errors: [{ field: 'code' }] });

    await awayFromStepEdge();
    const confirmed = await post('ma', 'me/mfa/totp/confirm', { code: codeAt(started.secret) }, token);
    expect(confirmed.statusCode).toBe(200);
    const codes = confirmed.json().recovery_codes as string[];
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const stored = await db('ma').selectFrom('mfa_recovery_codes').select('code_hash').where('user_id', '=', user.id).execute();
    expect(stored).toHaveLength(10);
    for (const code of codes) expect(stored.map((s) => s.code_hash)).not.toContain(code);
    expect((await t.app.inject({ url: '/api/v1/tenants/ma/me/mfa', headers: bearer(token) })).json()).toMatchObject({ totp: { status: 'active' }, recovery_codes_remaining: 10 });
    // Active: a second enrolment is refused until this one is removed.
    expect((await post('ma', 'me/mfa/totp', { password: PASSWORD }, token)).json().code).toBe('mfa.already_enrolled');
  });

  it('disables TOTP with the password or a current code, not without', async () => {
    const u = await enrolled();
    const none = await t.app.inject({ method: 'DELETE', url: '/api/v1/tenants/ma/me/mfa/totp', headers: bearer(u.token), payload: {} });
    expect(none.statusCode).toBe(400);
    expect(none.json().errors[0].field).toBe('code');
    const wrongPassword = await t.app.inject({ method: 'DELETE', url: '/api/v1/tenants/ma/me/mfa/totp', headers: bearer(u.token), payload: { password: 'nope' } });
    expect(wrongPassword.json().errors[0].field).toBe('password');
    const ok = await t.app.inject({ method: 'DELETE', url: '/api/v1/tenants/ma/me/mfa/totp', headers: bearer(u.token), payload: { code: codeAt(u.secret) } });
    expect(ok.statusCode, ok.body).toBe(204);
    expect(await db('ma').selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', u.id).execute()).toEqual([]);
    expect((await passwordLogin('ma', u.email)).json()).toHaveProperty('access_token');
  });

  it('regenerates recovery codes: the old ones stop working', async () => {
    const u = await enrolled();
    const res = await post('ma', 'me/mfa/recovery-codes', { password: PASSWORD }, u.token);
    expect(res.statusCode, res.body).toBe(200);
    const fresh = res.json().recovery_codes as string[];
    expect(fresh).toHaveLength(10);
    const step = (await passwordLogin('ma', u.email)).json();
    expect((await post('ma', 'auth/mfa/verify', { mfa_token: step.mfa_token, recovery_code: u.codes[0] })).statusCode).toBe(401);
    expect((await post('ma', 'auth/mfa/verify', { mfa_token: step.mfa_token, recovery_code: fresh[0] })).statusCode).toBe(200);
  });
});

describe('login step-up', () => {
  it('answers mfa_required without tokens, then verify with a TOTP code gives the token answer', async () => {
    const u = await enrolled();
    const first = await passwordLogin('ma', u.email);
    expect(first.statusCode).toBe(200);
    const step = first.json();
    expect(step).toEqual({ mfa_required: true, mfa_token: expect.stringMatching(/^mfa_/), methods: ['totp', 'recovery_code'], expires_in: 300 });
    expect(step).not.toHaveProperty('access_token');

    const done = await post('ma', 'auth/mfa/verify', { mfa_token: step.mfa_token, code: codeAt(u.secret) });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toMatchObject({ token_type: 'bearer', user: { id: u.id }, access_token: expect.any(String), refresh_token: expect.any(String) });
    expect((await t.app.inject({ url: '/api/v1/tenants/ma/me', headers: bearer(done.json().access_token) })).statusCode).toBe(200);

    // Single use: the token is spent.
    const again = await post('ma', 'auth/mfa/verify', { mfa_token: step.mfa_token, code: codeAt(u.secret, 1) });
    expect(again.statusCode).toBe(401);
    expect(again.json().code).toBe('auth.mfa_token_invalid');
  });

  it('refuses a wrong code, a replayed code, and a code two steps off; accepts one step of drift', async () => {
    const u = await enrolled(); // confirmed with the code of the previous step
    await awayFromStepEdge();
    const token = () => passwordLogin('ma', u.email).then((r) => r.json().mfa_token as string);
    const verify = async (code: string) => post('ma', 'auth/mfa/verify', { mfa_token: await token(), code });

    const current = codeAt(u.secret);
    const wrong = ['123456', '654321'].find((c) => c !== current && c !== codeAt(u.secret, 1))!;
    const bad = await verify(wrong);
    expect(bad.statusCode).toBe(401);
    expect(bad.json().code).toBe('auth.mfa_failed');
    // The code used at the confirmation (previous step) is a replay.
    expect((await verify(codeAt(u.secret, -1))).statusCode).toBe(401);
    expect((await verify(codeAt(u.secret, 2))).statusCode).toBe(401);
    expect((await verify(codeAt(u.secret, -2))).statusCode).toBe(401);
    // One step ahead (a fast clock): accepted; then the current step is behind it, a replay.
    expect((await verify(codeAt(u.secret, 1))).statusCode).toBe(200);
    expect((await verify(current)).statusCode).toBe(401);
    expect((await verify(codeAt(u.secret, 1))).statusCode).toBe(401);
  });

  it('takes each recovery code once', async () => {
    const u = await enrolled();
    const step = () => passwordLogin('ma', u.email).then((r) => r.json().mfa_token as string);
    const first = await post('ma', 'auth/mfa/verify', { mfa_token: await step(), recovery_code: u.codes[3]!.toUpperCase() });
    expect(first.statusCode, first.body).toBe(200);
    // As `code` too (not six digits: a recovery code); used, it fails.
    expect((await post('ma', 'auth/mfa/verify', { mfa_token: await step(), code: u.codes[3] })).statusCode).toBe(401);
    expect((await post('ma', 'auth/mfa/verify', { mfa_token: await step(), code: u.codes[4] })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/api/v1/tenants/ma/me/mfa', headers: bearer(u.token) })).json().recovery_codes_remaining).toBe(8);
  });

  it('asks for exactly one factor, naming the field', async () => {
    const u = await enrolled();
    const mfaToken = (await passwordLogin('ma', u.email)).json().mfa_token;
    const res = await post('ma', 'auth/mfa/verify', { mfa_token: mfaToken, code: codeAt(u.secret), recovery_code: u.codes[0] });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].field).toBe('code');
  });

  it('binds the mfa_token to its tenant, and a TOTP of one tenant fails on the other', async () => {
    const a = await enrolled('ma');
    const b = await enrolled('mb');
    const tokenA = (await passwordLogin('ma', a.email)).json().mfa_token;
    const onB = await post('mb', 'auth/mfa/verify', { mfa_token: tokenA, code: codeAt(a.secret) });
    expect(onB.statusCode).toBe(401);
    expect(onB.json().code).toBe('auth.mfa_token_invalid');
    const tokenB = (await passwordLogin('mb', b.email)).json().mfa_token;
    expect((await post('mb', 'auth/mfa/verify', { mfa_token: tokenB, code: codeAt(a.secret) === codeAt(b.secret) ? '000000' : codeAt(a.secret) })).statusCode).toBe(401);
    expect((await post('ma', 'auth/mfa/verify', { mfa_token: tokenA, code: codeAt(a.secret) })).statusCode).toBe(200);
  });

  it('expires the mfa_token', async () => {
    const u = await enrolled();
    const mfaToken = (await passwordLogin('ma', u.email)).json().mfa_token;
    await db('ma').updateTable('mfa_challenges').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', u.id).execute();
    const res = await post('ma', 'auth/mfa/verify', { mfa_token: mfaToken, code: codeAt(u.secret) });
    expect(res.json().code).toBe('auth.mfa_token_invalid');
  });

  it('guards the browser login too: auth/session answers mfa_required with no cookie, auth/session/mfa/verify sets it', async () => {
    const u = await enrolled();
    const first = await passwordLogin('ma', u.email, 'auth/session');
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ mfa_required: true });
    expect(first.headers['set-cookie']).toBeUndefined();
    const done = await post('ma', 'auth/session/mfa/verify', { mfa_token: first.json().mfa_token, code: codeAt(u.secret) });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).not.toHaveProperty('refresh_token');
    expect(done.json().access_token).toEqual(expect.any(String));
    expect(String(done.headers['set-cookie'])).toMatch(/^ss_refresh=rt_/);
  });

  it('counts MFA failures towards the lockout, and a locked account cannot finish with the right code', async () => {
    await setSetting('mb', 'lockout.max_failures', 3);
    try {
      const u = await enrolled('mb');
      const mfaToken = (await passwordLogin('mb', u.email)).json().mfa_token;
      const wrong = ['123456', '654321', '111111'].filter((c) => c !== codeAt(u.secret) && c !== codeAt(u.secret, 1) && c !== codeAt(u.secret, -1));
      for (let i = 0; i < 3; i++) expect((await post('mb', 'auth/mfa/verify', { mfa_token: mfaToken, code: wrong[i % wrong.length] })).statusCode).toBe(401);
      const row = await db('mb').selectFrom('users').select(['locked_until', 'lockout_count']).where('id', '=', u.id).executeTakeFirstOrThrow();
      expect(row.lockout_count).toBe(1);
      expect(row.locked_until!.getTime()).toBeGreaterThan(Date.now());
      expect((await post('mb', 'auth/mfa/verify', { mfa_token: mfaToken, code: codeAt(u.secret) })).statusCode).toBe(401);
      expect((await passwordLogin('mb', u.email)).statusCode).toBe(401);
      const failures = await db('mb').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login_failed').where('entity_id', '=', u.id).execute();
      expect(failures.filter((f) => (f.metadata as { reason?: string }).reason === 'bad_mfa_factor')).toHaveLength(3);
    } finally {
      await setSetting('mb', 'lockout.max_failures', 10);
    }
  });

  it('starts a TOTP enrolment from a session only with the password: a stolen token cannot make codes that would then add a passkey', async () => {
    const user = await seedUser(t, 'mb', { email: 'no-proof@mb.example', roles: ['user'] });
    const token = (await login(t.app, 'mb', user.email)).access_token;
    const none = await post('mb', 'me/mfa/totp', {}, token);
    expect(none.statusCode).toBe(400);
    expect(none.json().errors).toEqual([{ field: 'password', reason: 'your password or a passkey assertion is required' }]);
    expect((await post('mb', 'me/mfa/totp', { password: 'a guess' }, token)).json().errors).toEqual([{ field: 'password', reason: 'is not the current password' }]);
    expect(await db('mb').selectFrom('mfa_totp').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    // Without a factor there is no code to prove anything with, so no passkey either.
    expect((await post('mb', 'me/mfa/passkeys/registration-options', { code: '123456' }, token)).statusCode).toBe(400);
    expect((await post('mb', 'me/mfa/totp', { password: PASSWORD }, token)).statusCode).toBe(201);
  });

  it('counts wrong codes and passwords given to change a factor towards the lockout; a locked account changes none', async () => {
    await setSetting('mb', 'lockout.max_failures', 3);
    try {
      const u = await enrolled('mb');
      const elsewhere = await enrolled('ma');
      const removeTotp = (slug: string, token: string, payload: object) => t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/${slug}/me/mfa/totp`, headers: bearer(token), payload });
      const wrongCode = ['123456', '654321', '111111'].find((c) => ![-1, 0, 1].some((o) => codeAt(u.secret, o) === c))!;
      expect((await removeTotp('mb', u.token, { code: wrongCode })).json().errors).toEqual([{ field: 'code', reason: 'is wrong or was used already' }]);
      expect((await removeTotp('mb', u.token, { password: 'not the password' })).statusCode).toBe(400);
      expect((await db('mb').selectFrom('users').select('locked_until').where('id', '=', u.id).executeTakeFirstOrThrow()).locked_until).toBeNull();
      expect((await post('mb', 'me/mfa/passkeys/registration-options', { password: 'nor this one' }, u.token)).statusCode).toBe(400);

      const row = await db('mb').selectFrom('users').select(['locked_until', 'lockout_count']).where('id', '=', u.id).executeTakeFirstOrThrow();
      expect(row.lockout_count).toBe(1);
      expect(row.locked_until!.getTime()).toBeGreaterThan(Date.now());
      // Locked: not even the right password is checked, and the factor stays.
      const locked = await removeTotp('mb', u.token, { password: PASSWORD });
      expect(locked.statusCode).toBe(400);
      expect(locked.json().errors).toEqual([{ field: 'password', reason: expect.stringMatching(/locked/) }]);
      expect(await db('mb').selectFrom('mfa_totp').select('id').where('user_id', '=', u.id).execute()).toHaveLength(1);
      expect((await passwordLogin('mb', u.email)).statusCode).toBe(401);
      const failures = await db('mb').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login_failed').where('entity_id', '=', u.id).orderBy('created_at').execute();
      expect(failures.map((f) => f.metadata).slice(0, 4)).toEqual([
        { reason: 'bad_mfa_factor', context: 'reauthentication' },
        { reason: 'bad_password', context: 'reauthentication' },
        { reason: 'bad_password', context: 'reauthentication' },
        { reason: 'locked', context: 'reauthentication' },
      ]);
      // The same steps in another tenant are that tenant's own.
      expect((await removeTotp('ma', elsewhere.token, { password: PASSWORD })).statusCode).toBe(204);
    } finally {
      await setSetting('mb', 'lockout.max_failures', 10);
    }
  });
});

describe('the auth.mfa setting', () => {
  it('required: a user without a factor gets an enrolment token that only enrols, then signs in', async () => {
    await setSetting('mb', 'auth.mfa', 'required');
    try {
      const user = await seedUser(t, 'mb', { email: 'forced@mb.example', roles: ['user'] });
      const first = (await passwordLogin('mb', user.email)).json();
      expect(first).toEqual({ mfa_enrolment_required: true, mfa_token: expect.stringMatching(/^mfa_/), methods: ['totp', 'webauthn'], expires_in: 900 });
      // The enrolment token is no login token, nor a bearer token.
      expect((await post('mb', 'auth/mfa/verify', { mfa_token: first.mfa_token, code: '123456' })).json().code).toBe('auth.mfa_token_invalid');
      expect((await t.app.inject({ url: '/api/v1/tenants/mb/me', headers: bearer(first.mfa_token) })).statusCode).toBe(401);

      const started = await post('mb', 'auth/mfa/totp', { mfa_token: first.mfa_token });
      expect(started.statusCode, started.body).toBe(201);
      await awayFromStepEdge();
      const done = await post('mb', 'auth/mfa/totp/confirm', { mfa_token: first.mfa_token, code: codeAt(started.json().secret) });
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json()).toMatchObject({ token_type: 'bearer', user: { id: user.id } });
      expect(done.json().recovery_codes).toHaveLength(10);
      // Spent; and the next login asks for the factor.
      expect((await post('mb', 'auth/mfa/totp', { mfa_token: first.mfa_token })).statusCode).toBe(401);
      expect((await passwordLogin('mb', user.email)).json()).toMatchObject({ mfa_required: true });
      // Tenant ma is untouched by mb's setting.
      const other = await seedUser(t, 'ma', { email: 'forced@ma.example' });
      expect((await passwordLogin('ma', other.email)).json()).toHaveProperty('access_token');
    } finally {
      await setSetting('mb', 'auth.mfa', 'optional');
    }
  });

  it('off: no factor is asked for or enrolled', async () => {
    const u = await enrolled('mb');
    await setSetting('mb', 'auth.mfa', 'off');
    try {
      expect((await passwordLogin('mb', u.email)).json()).toHaveProperty('access_token');
      expect((await post('mb', 'me/mfa/recovery-codes', { password: PASSWORD }, u.token)).json().code).toBe('mfa.disabled');
    } finally {
      await setSetting('mb', 'auth.mfa', 'optional');
    }
  });

  it('refuses a value outside off, optional, required', async () => {
    const setting = await db('ma').selectFrom('settings').select('id').where('key', '=', 'auth.mfa').executeTakeFirstOrThrow();
    const res = await t.app.inject({ method: 'PUT', url: `/api/v1/tenants/ma/settings/${setting.id}`, headers: bearer(t.tokens.ma), payload: { value: 'always' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].field).toBe('value');
  });
});

describe('administrator reset', () => {
  it('resets the factors and ends the sessions; a lower-ranked admin is refused', async () => {
    const target = await enrolled('ma', ['admin']);
    const manager = await seedUser(t, 'ma', { email: `mgr${++n}@ma.example`, roles: ['manager'] });
    const managerToken = (await login(t.app, 'ma', manager.email)).access_token;
    const refused = await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/ma/users/${target.id}/mfa`, headers: bearer(managerToken) });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('permission.outranked');
    expect(await db('ma').selectFrom('mfa_totp').select('id').where('user_id', '=', target.id).execute()).toHaveLength(1);

    // Another tenant's admin cannot reach the user at all.
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/mb/users/${target.id}/mfa`, headers: bearer(t.tokens.mb) })).statusCode).toBe(404);

    const ok = await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/ma/users/${target.id}/mfa`, headers: bearer(t.tokens.ma) });
    expect(ok.statusCode, ok.body).toBe(204);
    expect(await db('ma').selectFrom('mfa_totp').select('id').where('user_id', '=', target.id).execute()).toEqual([]);
    expect(await db('ma').selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', target.id).execute()).toEqual([]);
    expect((await t.app.inject({ url: '/api/v1/tenants/ma/me', headers: bearer(target.token) })).statusCode).toBe(401);
    expect((await passwordLogin('ma', target.email)).json()).toHaveProperty('access_token');

    // A manager may reset a plain user.
    const plain = await enrolled('ma');
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/ma/users/${plain.id}/mfa`, headers: bearer(managerToken) })).statusCode).toBe(204);
  });
});

describe('audit and events', () => {
  it('audits every step and writes its event', async () => {
    const u = await enrolled('mb');
    const mfaToken = (await passwordLogin('mb', u.email)).json().mfa_token;
    await post('mb', 'auth/mfa/verify', { mfa_token: mfaToken, recovery_code: u.codes[0] });
    await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/mb/users/${u.id}/mfa`, headers: bearer(t.tokens.mb) });

    const actions = (await db('mb').selectFrom('audit_logs').select('action').where('entity_id', '=', u.id).orderBy('created_at').execute()).map((r) => r.action);
    for (const action of ['mfa.totp_started', 'mfa.totp_confirmed', 'mfa.recovery_codes_generated', 'auth.mfa_required', 'mfa.recovery_code_used', 'auth.login', 'mfa.reset']) expect(actions).toContain(action);
    const login = await db('mb').selectFrom('audit_logs').select('metadata').where('entity_id', '=', u.id).where('action', '=', 'auth.login').orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    expect(login.metadata).toMatchObject({ mfa: 'recovery_code' });

    const events = await db('mb').selectFrom('outbox_events').select(['type', 'data']).execute();
    const mine = events.filter((e) => (e.data as { id?: string }).id === u.id).map((e) => e.type);
    for (const type of ['mfa.enrolment_started', 'mfa.enrolled', 'mfa.recovery_codes_generated', 'auth.mfa_required', 'mfa.recovery_code_used', 'auth.login', 'mfa.reset']) expect(mine).toContain(type);
    // No secret or code in any of them.
    const text = JSON.stringify(events);
    expect(text).not.toContain(u.secret);
    for (const code of u.codes) expect(text).not.toContain(code);
    // Nothing of it in the other tenant.
    expect(await db('ma').selectFrom('audit_logs').select('id').where('entity_id', '=', u.id).execute()).toEqual([]);
  });
});
