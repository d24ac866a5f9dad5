import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { MAX_LIVE_SIGN_IN_CHALLENGES } from '../src/auth/mfa/service.js';
import { relyingParty } from '../src/auth/mfa/webauthn.js';
import { tenantDb } from '../src/db/database.js';
import { b64url, RP_ID, SoftAuthenticator } from './support/authenticator.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/**
 * SPEC section 19, WebAuthn passkeys as a second factor, against a real database and two
 * tenants, with a software authenticator (ES256 on P-256, attestation "none") built here from
 * node:crypto: registration, the login step-up, cloned counters, wrong origins and challenges,
 * tenant isolation, removal, an administrator's reset, forced enrolment, audit and events.
 */
const t = useTenants(['pa', 'pb']);


const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const post = (slug: string, path: string, payload: object, token?: string) =>
  t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/${path}`, payload, ...(token ? { headers: bearer(token) } : {}) });
const get = (slug: string, path: string, token: string) => t.app.inject({ url: `/api/v1/tenants/${slug}/${path}`, headers: bearer(token) });


async function setSetting(slug: string, key: string, value: unknown) {
  await db(slug).updateTable('settings').set({ value: JSON.stringify(value) }).where('key', '=', key).execute();
  await t.services.changes.committed(await t.services.directory.resolve(slug), [{ kind: 'settings' }]);
}

let n = 0;
/** A signed-in user of `slug` with one passkey registered, its authenticator, and the recovery codes it came with. */
async function withPasskey(slug = 'pa', roles = ['user']) {
  const user = await seedUser(t, slug, { email: `p${++n}@${slug}.example`, roles });
  const token = (await login(t.app, slug, user.email)).access_token;
  const device = new SoftAuthenticator();
  const options = await post(slug, 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token);
  expect(options.statusCode, options.body).toBe(200);
  const res = await post(slug, 'me/mfa/passkeys', { name: 'Key', response: device.register(options.json()) }, token);
  expect(res.statusCode, res.body).toBe(201);
  return { ...user, token, device, passkey: res.json() as { id: string; recovery_codes: string[] } };
}

/** A password login's mfa_token, and the passkey options for it. */
async function stepUp(slug: string, email: string) {
  const first = await post(slug, 'auth/login', { email, password: PASSWORD });
  expect(first.statusCode, first.body).toBe(200);
  const mfaToken = first.json().mfa_token as string;
  const options = await post(slug, 'auth/mfa/passkey-options', { mfa_token: mfaToken });
  expect(options.statusCode, options.body).toBe(200);
  return { mfaToken, options: options.json() as { challenge: string; allowCredentials: { id: string }[] }, methods: first.json().methods as string[] };
}

describe('passkey registration', () => {
  it('gives options for this relying party, registers the passkey, lists it, and gives recovery codes with the first factor only', async () => {
    const user = await seedUser(t, 'pa', { email: 'reg@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const device = new SoftAuthenticator();
    const options = (await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json();
    expect(options).toMatchObject({
      rp: { id: RP_ID, name: expect.any(String) },
      user: { name: user.email, id: b64url(Buffer.from(user.id)) },
      attestation: 'none',
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      excludeCredentials: [],
      timeout: 300_000,
    });
    const res = await post('pa', 'me/mfa/passkeys', { name: 'Laptop', response: device.register(options) }, token);
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json();
    expect(created).toMatchObject({ id: expect.any(String), name: 'Laptop', transports: ['usb'], backed_up: false, last_used_at: null });
    expect(created.recovery_codes).toHaveLength(10);

    const row = await db('pa').selectFrom('mfa_passkeys').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.credential_id).toBe(device.id);
    expect(row.public_key.length).toBeGreaterThan(64);
    expect(row.counter).toBe('0');

    const status = (await get('pa', 'me/mfa', token)).json();
    expect(status).toMatchObject({ totp: { status: 'none' }, recovery_codes_remaining: 10, passkeys: [{ id: created.id, name: 'Laptop' }] });
    expect(JSON.stringify(status)).not.toContain(device.id);

    // The second one: the first excluded, no new recovery codes.
    const again = (await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json();
    expect(again.excludeCredentials).toEqual([{ id: device.id, type: 'public-key', transports: ['usb'] }]);
    const second = await post('pa', 'me/mfa/passkeys', { response: new SoftAuthenticator().register(again) }, token);
    expect(second.statusCode, second.body).toBe(201);
    expect(second.json().name).toBe('Passkey');
    expect(second.json()).not.toHaveProperty('recovery_codes');
    expect((await get('pa', 'me/mfa', token)).json().passkeys).toHaveLength(2);
  });

  it('asks for proof that it is the user before a session adds a passkey: the password, a current code or a passkey', async () => {
    const user = await seedUser(t, 'pa', { email: 'proof@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const none = await post('pa', 'me/mfa/passkeys/registration-options', {}, token);
    expect(none.statusCode).toBe(400);
    expect(none.json().errors[0].field).toBe('code');
    const wrong = await post('pa', 'me/mfa/passkeys/registration-options', { password: 'not the password' }, token);
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json()).toMatchObject({ code: 'mfa.invalid_code', errors: [{ field: 'password' }] });
    expect(await db('pa').selectFrom('mfa_passkey_challenges').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    // With a first passkey, the next one may be proven with it.
    const device = new SoftAuthenticator();
    expect((await post('pa', 'me/mfa/passkeys', { response: device.register((await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json()) }, token)).statusCode).toBe(201);
    const reauth = (await post('pa', 'me/mfa/passkeys/authentication-options', {}, token)).json();
    const next = await post('pa', 'me/mfa/passkeys/registration-options', { webauthn: device.assert(reauth) }, token);
    expect(next.statusCode, next.body).toBe(200);
  });

  it('refuses a wrong origin, a wrong RP ID, an unknown or used challenge, and a registered credential', async () => {
    const user = await seedUser(t, 'pa', { email: 'bad-reg@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const options = () => post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token).then((r) => r.json());
    const register = (response: object) => post('pa', 'me/mfa/passkeys', { response }, token);
    const refused = async (response: object) => {
      const res = await register(response);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ code: 'mfa.passkey_invalid', errors: [{ field: 'response' }] });
    };
    const device = new SoftAuthenticator();
    await refused(device.register(await options(), { origin: 'https://evil.example' }));
    await refused(device.register(await options(), { rpId: 'evil.example' }));
    await refused(device.register(await options(), { challenge: b64url(randomBytes(32)) }));
    // The refusals used their challenges up: each needs new options.
    const fresh = await options();
    expect((await register(device.register(fresh))).statusCode).toBe(201);
    await refused(new SoftAuthenticator().register(fresh));
    // The same credential again (options that did not exclude it, as another client might have).
    const conflict = await register(device.register(await options()));
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().code).toBe('mfa.passkey_exists');
    expect(await db('pa').selectFrom('mfa_passkeys').select('id').where('user_id', '=', user.id).execute()).toHaveLength(1);
  });

  it('answers malformed input with problem+json naming the field', async () => {
    const user = await seedUser(t, 'pa', { email: 'malformed@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const device = new SoftAuthenticator();
    const good = device.register((await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json());
    const cases: [object, string][] = [
      [{}, 'response'],
      [{ response: { ...good, response: { ...good.response, clientDataJSON: 'not base64url!' } } }, 'response.response.clientDataJSON'],
      [{ response: { ...good, type: 'password' } }, 'response.type'],
      [{ response: good, name: '' }, 'name'],
      [{ response: { ...good, response: { ...good.response, clientDataJSON: b64url(Buffer.from('{not json')) } } }, 'response'],
      [{ response: { ...good, response: { ...good.response, attestationObject: b64url(Buffer.from('junk')) } } }, 'response'],
    ];
    for (const [payload, field] of cases) {
      const res = await post('pa', 'me/mfa/passkeys', payload, token);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    const verify = await post('pa', 'auth/mfa/verify', { mfa_token: 'mfa_x', webauthn: { id: 'a' } });
    expect(verify.statusCode).toBe(400);
    expect(verify.json().errors[0].field).toMatch(/^webauthn/);
  });
});

describe('responses as browsers send them', () => {
  it('takes PublicKeyCredential.toJSON() output: nulls where the authenticator said nothing, and fields beyond those checked', async () => {
    const user = await seedUser(t, 'pa', { email: 'tojson@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const device = new SoftAuthenticator();
    const created = device.register((await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json());
    const registration = { ...created, authenticatorAttachment: null, response: { ...created.response, publicKeyAlgorithm: -7, authenticatorData: 'AAAA' }, clientExtensionResults: { credProps: { rk: true } } };
    const res = await post('pa', 'me/mfa/passkeys', { response: registration }, token);
    expect(res.statusCode, res.body).toBe(201);
    const { mfaToken, options } = await stepUp('pa', user.email);
    const asserted = device.assert(options);
    const assertion = { ...asserted, authenticatorAttachment: null, response: { ...asserted.response, userHandle: null } };
    const done = await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: assertion });
    expect(done.statusCode, done.body).toBe(200);
  });
});

describe('login step-up with a passkey', () => {
  it('asks for the factor, gives options for the user\'s passkeys, and signs in with an assertion', async () => {
    const u = await withPasskey();
    const { mfaToken, options, methods } = await stepUp('pa', u.email);
    expect(methods).toEqual(['webauthn', 'recovery_code']);
    expect(options).toMatchObject({ rpId: RP_ID, userVerification: 'preferred', allowCredentials: [{ id: u.device.id, type: 'public-key' }] });

    const done = await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toMatchObject({ token_type: 'bearer', user: { id: u.id }, access_token: expect.any(String) });
    const row = await db('pa').selectFrom('mfa_passkeys').select(['counter', 'last_used_at']).where('id', '=', u.passkey.id).executeTakeFirstOrThrow();
    expect(row.counter).toBe('1');
    expect(row.last_used_at).toBeInstanceOf(Date);
    const audit = await db('pa').selectFrom('audit_logs').select('metadata').where('entity_id', '=', u.id).where('action', '=', 'auth.login').orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    expect(audit.metadata).toMatchObject({ mfa: 'webauthn', passkey_id: u.passkey.id });

    // The mfa_token is spent; so is the challenge.
    expect((await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) })).json().code).toBe('auth.mfa_token_invalid');
    // The browser login takes the same assertion.
    const browser = await stepUp('pa', u.email);
    const cookie = await post('pa', 'auth/session/mfa/verify', { mfa_token: browser.mfaToken, webauthn: u.device.assert(browser.options) });
    expect(cookie.statusCode, cookie.body).toBe(200);
    expect(String(cookie.headers['set-cookie'])).toMatch(/^ss_refresh=rt_/);
  });

  it('refuses a cloned authenticator, a wrong origin, a wrong or reused challenge, and counts each towards the lockout', async () => {
    const u = await withPasskey();
    const fails = async (webauthn: (options: { challenge: string }) => object) => {
      const { mfaToken, options } = await stepUp('pa', u.email);
      const res = await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: webauthn(options) });
      expect(res.statusCode, res.body).toBe(401);
      expect(res.json().code).toBe('auth.mfa_failed');
    };
    const clone = u.device.clone();
    // The real one signs in twice: counter 2.
    for (let i = 0; i < 2; i++) {
      const { mfaToken, options } = await stepUp('pa', u.email);
      expect((await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) })).statusCode).toBe(200);
    }
    // The clone's counter (1, then 2) does not rise above it.
    await fails((o) => clone.assert(o));
    await fails((o) => clone.assert(o));
    await fails((o) => u.device.assert(o, { origin: 'https://evil.example' }));
    await fails((o) => u.device.assert(o, { rpId: 'evil.example' }));
    await fails(() => u.device.assert({ challenge: b64url(randomBytes(32)) }));
    // A challenge of an earlier step, answered on a new mfa_token.
    const old = await stepUp('pa', u.email);
    await fails(() => u.device.assert(old.options));
    // A signature by another key for the same credential ID.
    const impostor = new SoftAuthenticator(undefined, u.device.credentialId);
    await fails((o) => impostor.assert(o, { counter: 100 }));

    const failures = await db('pa').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login_failed').where('entity_id', '=', u.id).execute();
    expect(failures.filter((f) => (f.metadata as { reason?: string }).reason === 'bad_mfa_factor')).toHaveLength(7);
    const clones = await db('pa').selectFrom('audit_logs').select('metadata').where('action', '=', 'mfa.passkey_clone_suspected').where('entity_id', '=', u.id).execute();
    expect(clones.map((c) => c.metadata)).toEqual([expect.objectContaining({ passkey_id: u.passkey.id, counter: 1, stored: 2 }), expect.objectContaining({ counter: 2, stored: 2 })]);
    expect((await db('pa').selectFrom('mfa_passkeys').select('counter').where('id', '=', u.passkey.id).executeTakeFirstOrThrow()).counter).toBe('2');

    // The real one still works; its counter goes on from 2.
    const { mfaToken, options } = await stepUp('pa', u.email);
    expect((await post('pa', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) })).statusCode).toBe(200);
  });

  it('locks the account after enough passkey failures', async () => {
    await setSetting('pb', 'lockout.max_failures', 3);
    try {
      const u = await withPasskey('pb');
      const { mfaToken, options } = await stepUp('pb', u.email);
      for (let i = 0; i < 3; i++) expect((await post('pb', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options, { origin: 'https://evil.example' }) })).statusCode).toBe(401);
      const row = await db('pb').selectFrom('users').select(['locked_until']).where('id', '=', u.id).executeTakeFirstOrThrow();
      expect(row.locked_until!.getTime()).toBeGreaterThan(Date.now());
      expect((await post('pb', 'auth/login', { email: u.email, password: PASSWORD })).statusCode).toBe(401);
    } finally {
      await setSetting('pb', 'lockout.max_failures', 10);
    }
  });

  it("keeps tenants apart: another tenant's credential, challenge or mfa_token is unknown", async () => {
    const a = await withPasskey('pa');
    const b = await withPasskey('pb');
    const onB = await stepUp('pb', b.email);
    // A's authenticator answering B's challenge on B: A's credential is not B's tenant's.
    const res = await post('pb', 'auth/mfa/verify', { mfa_token: onB.mfaToken, webauthn: a.device.assert(onB.options) });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('auth.mfa_failed');
    // A's mfa_token on B.
    const onA = await post('pa', 'auth/login', { email: a.email, password: PASSWORD });
    const cross = await post('pb', 'auth/mfa/passkey-options', { mfa_token: onA.json().mfa_token });
    expect(cross.statusCode).toBe(401);
    expect(cross.json().code).toBe('auth.mfa_token_invalid');
    // B's own passkey still signs B in.
    const again = await stepUp('pb', b.email);
    expect((await post('pb', 'auth/mfa/verify', { mfa_token: again.mfaToken, webauthn: b.device.assert(again.options) })).statusCode).toBe(200);
  });
});

describe('passwordless sign-in with a passkey', () => {
  /** Options of auth/passkey/options. */
  const signInOptions = async (slug: string) => {
    const res = await post(slug, 'auth/passkey/options', {});
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { challenge: string; allowCredentials: unknown[]; userVerification: string };
  };
  const passkeyLogin = (slug: string, webauthn: object) => post(slug, 'auth/passkey/login', { webauthn });

  it('asks for a discoverable passkey with the user verified, and signs its user in with no password and no second step', async () => {
    const u = await withPasskey('pa');
    const options = await signInOptions('pa');
    expect(options).toMatchObject({ rpId: RP_ID, userVerification: 'required', allowCredentials: [], timeout: 300_000 });
    const res = await passkeyLogin('pa', u.device.assert(options));
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json();
    expect(answer).toMatchObject({ token_type: 'bearer', user: { id: u.id, email: u.email } });
    expect(answer).not.toHaveProperty('mfa_token');
    // The tokens work, and the session is the user's.
    const me = await get('pa', 'me', answer.access_token);
    expect(me.statusCode).toBe(200);
    expect(me.json().id).toBe(u.id);
    const audit = await db('pa').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login').where('entity_id', '=', u.id).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    expect(audit.metadata).toMatchObject({ mfa: 'webauthn', passkey_id: u.passkey.id, passwordless: true });
    expect((await db('pa').selectFrom('mfa_passkeys').select(['counter', 'last_used_at']).where('id', '=', u.passkey.id).executeTakeFirstOrThrow()).last_used_at).not.toBeNull();
    // The challenge was used up.
    const replay = await passkeyLogin('pa', u.device.assert(options));
    expect(replay.statusCode).toBe(401);
    expect(replay.json().code).toBe('auth.passkey_failed');
  });

  it('refuses an unverified user, a wrong user handle, origin or challenge, and an unknown credential; failures are audited, not counted, and a locked account stays locked', async () => {
    await setSetting('pb', 'lockout.max_failures', 3);
    try {
      const u = await withPasskey('pb');
      const refused = async (webauthn: object) => {
        const res = await passkeyLogin('pb', webauthn);
        expect(res.statusCode, res.body).toBe(401);
        expect(res.json()).toMatchObject({ code: 'auth.passkey_failed', status: 401 });
      };
      await refused(u.device.assert(await signInOptions('pb'), { userVerified: false }));
      await refused(u.device.assert(await signInOptions('pb'), { userHandle: b64url(Buffer.from(randomUUID())) }));
      await refused(u.device.assert(await signInOptions('pb'), { origin: 'https://evil.example' }));
      await refused(u.device.assert({ challenge: b64url(randomBytes(32)) }));
      // A second-factor challenge is not a sign-in challenge.
      const { options: stepOptions } = await stepUp('pb', u.email);
      await refused(u.device.assert(stepOptions));
      await refused(new SoftAuthenticator().assert(await signInOptions('pb')));
      const reasons = (await db('pb').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login_failed').execute()).map((r) => (r.metadata as { reason?: string }).reason);
      expect(reasons.filter((r) => r === 'unknown_passkey')).toHaveLength(1);
      // Five failures of a known credential, over the threshold of three: audited, yet no lock (a
      // signature cannot be guessed, and anyone who knows a credential ID could lock its user).
      expect(reasons.filter((r) => r === 'bad_passkey')).toHaveLength(5);
      const row = await db('pb').selectFrom('users').select(['locked_until', 'failed_login_count']).where('id', '=', u.id).executeTakeFirstOrThrow();
      expect(row).toEqual({ locked_until: null, failed_login_count: 0 });
      expect((await passkeyLogin('pb', u.device.assert(await signInOptions('pb')))).statusCode).toBe(200);
      // Wrong passwords lock the account: then the passkey is refused too.
      for (let i = 0; i < 3; i++) expect((await post('pb', 'auth/login', { email: u.email, password: 'not the password' })).statusCode).toBe(401);
      await refused(u.device.assert(await signInOptions('pb')));
    } finally {
      await setSetting('pb', 'lockout.max_failures', 10);
    }
  });

  it("keeps tenants apart: a passkey of one tenant does not sign in on the other, nor with the other's challenge", async () => {
    const a = await withPasskey('pa');
    const b = await withPasskey('pb');
    const onB = await signInOptions('pb');
    const res = await passkeyLogin('pb', a.device.assert(onB));
    expect(res.statusCode).toBe(401);
    // A's challenge answered on A but sent to B, then B's own: B's credential with A's challenge fails on B.
    expect((await passkeyLogin('pb', b.device.assert(await signInOptions('pa')))).statusCode).toBe(401);
    const ok = await passkeyLogin('pb', b.device.assert(await signInOptions('pb')));
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().user.id).toBe(b.id);
  });

  it('keeps at most MAX_LIVE_SIGN_IN_CHALLENGES sign-in challenges in a tenant, dropping the oldest', async () => {
    await sql`INSERT INTO ${sql.table('tenant_pb.mfa_passkey_challenges')} (purpose, challenge, expires_at)
      SELECT 'authentication', 'bulk' || i, now() + make_interval(secs => 100 + i / 100.0) FROM generate_series(1, ${MAX_LIVE_SIGN_IN_CHALLENGES + 5}::int) AS i`.execute(t.db.database.db);
    const fresh = await signInOptions('pb');
    const left = await db('pb').selectFrom('mfa_passkey_challenges').select(['challenge']).where('user_id', 'is', null).execute();
    expect(left.length).toBeLessThanOrEqual(MAX_LIVE_SIGN_IN_CHALLENGES);
    const kept = new Set(left.map((r) => r.challenge));
    expect(kept.has(fresh.challenge)).toBe(true);
    expect(kept.has('bulk1')).toBe(false);
    expect(kept.has(`bulk${MAX_LIVE_SIGN_IN_CHALLENGES + 5}`)).toBe(true);
    await db('pb').deleteFrom('mfa_passkey_challenges').where('challenge', 'like', 'bulk%').execute();
  });

  it('is refused while auth.mfa is off, and answers malformed input naming the field', async () => {
    const bad = await post('pa', 'auth/passkey/login', { webauthn: { id: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].field).toMatch(/^webauthn/);
    await setSetting('pa', 'auth.mfa', 'off');
    try {
      const off = await post('pa', 'auth/passkey/options', {});
      expect(off.statusCode).toBe(409);
      expect(off.json().code).toBe('mfa.disabled');
    } finally {
      await setSetting('pa', 'auth.mfa', 'optional');
    }
  });
});

describe('removing passkeys', () => {
  it('removes a passkey with the password, not without; the last factor takes the recovery codes with it', async () => {
    const u = await withPasskey();
    const url = `/api/v1/tenants/pa/me/mfa/passkeys/${u.passkey.id}`;
    const none = await t.app.inject({ method: 'DELETE', url, headers: bearer(u.token), payload: {} });
    expect(none.statusCode).toBe(400);
    expect(none.json().errors[0].field).toBe('code');
    expect((await t.app.inject({ method: 'DELETE', url, headers: bearer(u.token), payload: { password: 'nope' } })).json().errors[0].field).toBe('password');
    // Someone else's passkey is no factor of theirs.
    const other = await withPasskey();
    expect((await t.app.inject({ method: 'DELETE', url, headers: bearer(other.token), payload: { password: PASSWORD } })).statusCode).toBe(404);

    const ok = await t.app.inject({ method: 'DELETE', url, headers: bearer(u.token), payload: { password: PASSWORD } });
    expect(ok.statusCode, ok.body).toBe(204);
    expect(await db('pa').selectFrom('mfa_passkeys').select('id').where('user_id', '=', u.id).execute()).toEqual([]);
    expect(await db('pa').selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', u.id).execute()).toEqual([]);
    expect((await post('pa', 'auth/login', { email: u.email, password: PASSWORD })).json()).toHaveProperty('access_token');
    expect((await t.app.inject({ method: 'DELETE', url, headers: bearer(u.token), payload: { password: PASSWORD } })).statusCode).toBe(404);
  });

  it('an administrator reset removes passkeys too', async () => {
    const u = await withPasskey('pb');
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/pb/users/${u.id}/mfa`, headers: bearer(t.tokens.pb) });
    expect(res.statusCode, res.body).toBe(204);
    expect(await db('pb').selectFrom('mfa_passkeys').select('id').where('user_id', '=', u.id).execute()).toEqual([]);
    const audit = await db('pb').selectFrom('audit_logs').select('metadata').where('entity_id', '=', u.id).where('action', '=', 'mfa.reset').executeTakeFirstOrThrow();
    expect(audit.metadata).toMatchObject({ passkeys: 1, recovery_codes: 10 });
    expect((await post('pb', 'auth/login', { email: u.email, password: PASSWORD })).json()).toHaveProperty('access_token');
  });
});

describe('auth.mfa = required', () => {
  it('enrols a passkey with the enrolment token and signs in; the next login asks for it', async () => {
    await setSetting('pb', 'auth.mfa', 'required');
    try {
      const user = await seedUser(t, 'pb', { email: 'forced@pb.example', roles: ['user'] });
      const first = (await post('pb', 'auth/login', { email: user.email, password: PASSWORD })).json();
      expect(first).toMatchObject({ mfa_enrolment_required: true, methods: ['totp', 'webauthn'] });
      // Not a login token: no assertion options for it.
      expect((await post('pb', 'auth/mfa/passkey-options', { mfa_token: first.mfa_token })).json().code).toBe('auth.mfa_token_invalid');

      const device = new SoftAuthenticator();
      const options = await post('pb', 'auth/mfa/passkeys/registration-options', { mfa_token: first.mfa_token });
      expect(options.statusCode, options.body).toBe(200);
      // A response to another challenge fails (and counts); the right one finishes the login.
      const wrong = await post('pb', 'auth/mfa/passkeys', { mfa_token: first.mfa_token, response: device.register(options.json(), { origin: 'https://evil.example' }) });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json().code).toBe('auth.mfa_failed');
      const retry = (await post('pb', 'auth/mfa/passkeys/registration-options', { mfa_token: first.mfa_token })).json();
      const done = await post('pb', 'auth/mfa/passkeys', { mfa_token: first.mfa_token, name: 'Phone', response: device.register(retry) });
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json()).toMatchObject({ token_type: 'bearer', user: { id: user.id } });
      expect(done.json().recovery_codes).toHaveLength(10);
      // Spent; and the next login asks for the passkey.
      expect((await post('pb', 'auth/mfa/passkeys/registration-options', { mfa_token: first.mfa_token })).statusCode).toBe(401);
      const { mfaToken, options: login2 } = await stepUp('pb', user.email);
      expect((await post('pb', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: device.assert(login2) })).statusCode).toBe(200);
    } finally {
      await setSetting('pb', 'auth.mfa', 'optional');
    }
  });
});

describe('audit and events', () => {
  it('audits every passkey step and writes its event, with no key material', async () => {
    const u = await withPasskey('pb');
    const { mfaToken, options } = await stepUp('pb', u.email);
    await post('pb', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) });
    const clone = await stepUp('pb', u.email);
    await post('pb', 'auth/mfa/verify', { mfa_token: clone.mfaToken, webauthn: u.device.clone().assert(clone.options) });
    await t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/pb/me/mfa/passkeys/${u.passkey.id}`, headers: bearer(u.token), payload: { password: PASSWORD } });

    const actions = (await db('pb').selectFrom('audit_logs').select('action').where('entity_id', '=', u.id).execute()).map((r) => r.action);
    for (const action of ['mfa.passkey_started', 'mfa.passkey_registered', 'mfa.recovery_codes_generated', 'auth.mfa_required', 'auth.mfa_passkey_challenge', 'auth.login', 'mfa.passkey_clone_suspected', 'mfa.passkey_removed']) {
      expect(actions).toContain(action);
    }
    const events = await db('pb').selectFrom('outbox_events').select(['type', 'data']).execute();
    const mine = events.filter((e) => (e.data as { id?: string }).id === u.id);
    for (const type of ['mfa.enrolment_started', 'mfa.enrolled', 'auth.mfa_passkey_challenge', 'auth.login', 'mfa.passkey_clone_suspected', 'mfa.removed']) expect(mine.map((e) => e.type)).toContain(type);
    expect(mine.filter((e) => e.type === 'mfa.enrolled').map((e) => e.data)).toContainEqual(expect.objectContaining({ method: 'webauthn', passkey_id: u.passkey.id }));
    expect(JSON.stringify(events)).not.toContain(u.device.id);
  });
});

describe('passkeys in tenant archives', () => {
  it('travel with an export and sign in on the imported tenant; their challenges stay behind', async () => {
    const u = await withPasskey('pa');
    await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, u.token);
    const system = { authorization: `Bearer ${await t.systemToken()}` };
    const exported = await t.app.inject({ url: '/api/v1/tenants/pa/export', headers: system });
    expect(exported.statusCode).toBe(200);
    const imported = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/import?slug=pa_copy', payload: exported.rawPayload, headers: { ...system, 'content-type': 'application/gzip' } });
    expect(imported.statusCode, imported.body).toBe(201);

    const copy = await db('pa_copy').selectFrom('mfa_passkeys').selectAll().where('user_id', '=', u.id).executeTakeFirstOrThrow();
    const original = await db('pa').selectFrom('mfa_passkeys').selectAll().where('user_id', '=', u.id).executeTakeFirstOrThrow();
    expect(copy).toEqual(original);
    expect(await db('pa_copy').selectFrom('mfa_passkey_challenges').select('id').execute()).toEqual([]);
    const { mfaToken, options } = await stepUp('pa_copy', u.email);
    expect((await post('pa_copy', 'auth/mfa/verify', { mfa_token: mfaToken, webauthn: u.device.assert(options) })).statusCode).toBe(200);
  });
});

describe('the relying party', () => {
  it('is PUBLIC_URL: its host the RP ID, its origin and the CORS origins the origins accepted', () => {
    expect(relyingParty('https://id.example.com/base', ['https://id.example.com', 'https://app.id.example.com'])).toEqual({
      id: 'id.example.com',
      origins: ['https://id.example.com', 'https://app.id.example.com'],
    });
    expect(relyingParty('http://localhost:8004')).toEqual({ id: 'localhost', origins: ['http://localhost:8004'] });
  });
});

describe('passkey challenges', () => {
  it('keeps a few live challenges per user: asking for more drops the oldest', async () => {
    const user = await seedUser(t, 'pa', { email: 'many@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const first = (await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json();
    for (let i = 0; i < 12; i++) await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token);
    expect(await db('pa').selectFrom('mfa_passkey_challenges').select('id').where('user_id', '=', user.id).execute()).toHaveLength(10);
    const res = await post('pa', 'me/mfa/passkeys', { response: new SoftAuthenticator().register(first) }, token);
    expect(res.json().code).toBe('mfa.passkey_invalid');
  });

  it('expire after five minutes', async () => {
    const user = await seedUser(t, 'pa', { email: 'late@pa.example' });
    const token = (await login(t.app, 'pa', user.email)).access_token;
    const options = (await post('pa', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, token)).json();
    const row = await db('pa').selectFrom('mfa_passkey_challenges').select(['created_at', 'expires_at']).where('challenge', '=', options.challenge).executeTakeFirstOrThrow();
    expect(row.expires_at.getTime() - row.created_at.getTime()).toBeGreaterThan(299_000);
    expect(row.expires_at.getTime() - row.created_at.getTime()).toBeLessThan(301_000);
    await db('pa').updateTable('mfa_passkey_challenges').set({ expires_at: new Date(Date.now() - 1000) }).where('challenge', '=', options.challenge).execute();
    expect((await post('pa', 'me/mfa/passkeys', { response: new SoftAuthenticator().register(options) }, token)).json().code).toBe('mfa.passkey_invalid');
  });
});

describe('re-authentication with a passkey', () => {
  it('removes a factor with a passkey assertion to its own challenge; a login challenge or a wrong signature is refused naming webauthn', async () => {
    const u = await withPasskey('pb');
    const second = new SoftAuthenticator();
    const regOptions = (await post('pb', 'me/mfa/passkeys/registration-options', { password: PASSWORD }, u.token)).json();
    const other = (await post('pb', 'me/mfa/passkeys', { name: 'Spare', response: second.register(regOptions) }, u.token)).json();
    const remove = (payload: object) => t.app.inject({ method: 'DELETE', url: `/api/v1/tenants/pb/me/mfa/passkeys/${other.id}`, headers: bearer(u.token), payload });
    const options = async () => {
      const res = await post('pb', 'me/mfa/passkeys/authentication-options', {}, u.token);
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { challenge: string; allowCredentials: { id: string }[] };
    };
    expect((await options()).allowCredentials.map((c) => c.id).sort()).toEqual([u.device.id, second.id].sort());

    // A login's challenge is not this one's, and another key's signature is not the passkey's.
    const login = await stepUp('pb', u.email);
    for (const payload of [{ webauthn: u.device.assert(login.options) }, { webauthn: new SoftAuthenticator(undefined, u.device.credentialId).assert(await options(), { counter: 50 }) }]) {
      const res = await remove(payload);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ code: 'mfa.invalid_code', errors: [{ field: 'webauthn' }] });
    }
    const ok = await remove({ webauthn: u.device.assert(await options()) });
    expect(ok.statusCode, ok.body).toBe(204);
    expect((await get('pb', 'me/mfa', u.token)).json().passkeys.map((p: { id: string }) => p.id)).toEqual([u.passkey.id]);
    // The same proof for new recovery codes.
    const codes = await post('pb', 'me/mfa/recovery-codes', { webauthn: u.device.assert(await options()) }, u.token);
    expect(codes.statusCode, codes.body).toBe(200);
    expect(codes.json().recovery_codes).toHaveLength(10);
  });
});
