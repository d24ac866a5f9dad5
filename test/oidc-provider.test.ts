import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { authenticator } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { childServiceEnv, createTestApp, type TestApp } from './support/app.js';
import { SoftAuthenticator } from './support/authenticator.js';
import { createTestDatabase } from './support/db.js';
import { exited, startTs } from './support/process.js';
import { bearer, login, PASSWORD, seedTenant, seedUser, type SeededUser } from './support/tenants.js';
import { freePort } from './support/net.js';

/**
 * SPEC §19: each tenant an OpenID Connect provider, end to end. The service listens on a port
 * chosen first (so PUBLIC_URL and the issuers are fixed); `openid-client` is the relying party
 * and plain fetch with a cookie jar the browser on the HTML pages. Two tenants: `oa`, `ob`.
 */
let t: TestApp;
let base: string;
const admins: Record<string, SeededUser> = {};
const tokens: Record<string, string> = {};

const issuerOf = (slug: string) => new URL(`${base}/api/v1/tenants/${slug}/oidc`);
const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const api = (slug: string, path: string, init: RequestInit & { token?: string } = {}) =>
  fetch(`${base}/api/v1/tenants/${slug}/${path}`, { ...init, headers: { ...(init.body ? { 'content-type': 'application/json' } : {}), ...(init.token ? bearer(init.token) : {}), ...(init.headers as Record<string, string> | undefined) } });

interface Registered {
  readonly client_id: string;
  readonly client_secret?: string;
}
let confidential: Registered;
let publicClient: Registered;
const redirectUri = () => `${base}/callback`;
const logoutUri = () => `${base}/signed-out`;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  t = await createTestApp({ publicUrl: base });
  for (const slug of ['oa', 'ob']) {
    admins[slug] = await seedTenant(t, slug);
    tokens[slug] = (await login(t.app, slug, admins[slug]!.email)).access_token;
  }
  await t.app.listen({ port, host: '127.0.0.1' });
  const register = async (body: object) => {
    const res = await api('oa', 'oidc/clients', { method: 'POST', token: tokens.oa, body: JSON.stringify(body) });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Registered;
  };
  confidential = await register({ name: 'Intranet', type: 'confidential', redirect_uris: [redirectUri()], post_logout_redirect_uris: [logoutUri()] });
  publicClient = await register({ name: 'Phone app', type: 'public', redirect_uris: [redirectUri()] });
});

afterAll(async () => t?.close());

/** A browser without script: a cookie jar (names only; paths are not needed here) and manual redirects. */
class Browser {
  readonly cookies = new Map<string, string>();

  /** Where following redirects stops: the application's URLs (default: this suite's redirect URIs). */
  constructor(private readonly stops: readonly string[] = [redirectUri(), logoutUri()]) {}

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const res = await fetch(url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      redirect: 'manual',
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        'accept-language': 'en',
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin } : {}),
      },
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const [name, ...value] = pair!.split('=');
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value.join('=') === '';
      if (expired) this.cookies.delete(name!.trim());
      else this.cookies.set(name!.trim(), value.join('='));
    }
    const location = res.headers.get('location');
    return { status: res.status, location: location ? new URL(location, url).href : null, body: await res.text(), headers: res.headers };
  }

  /** Follows redirects until a page answers or the browser is sent back to the application. */
  async follow(url: string, init: { form?: Record<string, string> } = {}) {
    let res = await this.request(url, init);
    while (res.location && !this.stops.some((stop) => res.location!.startsWith(stop))) res = await this.request(res.location);
    return res;
  }
}

const formAction = (html: string, n = 0) => [...html.matchAll(/<form method="post" action="([^"]+)"/g)][n]![1]!.replaceAll('&amp;', '&');
const hiddenValue = (html: string, name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1];

async function configFor(slug: string, client: Registered): Promise<oidc.Configuration> {
  const auth = client.client_secret ? oidc.ClientSecretBasic(client.client_secret) : oidc.None();
  return oidc.discovery(issuerOf(slug), client.client_id, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

interface Started {
  readonly browser: Browser;
  readonly verifier: string;
  readonly state: string;
  readonly page: Awaited<ReturnType<Browser['follow']>>;
}

async function authorize(config: oidc.Configuration, extra: Record<string, string> = {}, browser = new Browser()): Promise<Started> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri(),
    scope: 'openid profile email roles offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    prompt: 'consent',
    state,
    ...extra,
  });
  return { browser, verifier, state, page: await browser.follow(url.href) };
}

/** Signs in on the pages (password, then the consent) and exchanges the code. */
async function signIn(config: oidc.Configuration, email: string, started?: Started) {
  const flow = started ?? (await authorize(config));
  expect(flow.page.status, flow.page.body).toBe(200);
  expect(flow.page.body).toContain('name="password"');
  const page = await flow.browser.follow(new URL(formAction(flow.page.body), base).href, { form: { email, password: PASSWORD } });
  return finish(config, flow, page);
}

async function finish(config: oidc.Configuration, flow: Started, reached: Awaited<ReturnType<Browser['follow']>>) {
  let page = reached;
  if (!page.location) {
    expect(page.status, page.body).toBe(200);
    expect(page.body).toContain('Allow');
    page = await flow.browser.follow(new URL(formAction(page.body, 0), base).href, { form: {} });
  }
  expect(page.location, page.body).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
  const tokenSet = await oidc.authorizationCodeGrant(config, new URL(page.location!), { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
  return { tokens: tokenSet, browser: flow.browser };
}

describe('discovery', () => {
  it('answers each tenant its own issuer, with every endpoint under it', async () => {
    for (const slug of ['oa', 'ob']) {
      const res = await fetch(`${issuerOf(slug).href}/.well-known/openid-configuration`);
      expect(res.status).toBe(200);
      const meta = (await res.json()) as Record<string, unknown>;
      expect(meta.issuer).toBe(issuerOf(slug).href);
      for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint', 'revocation_endpoint']) {
        expect(meta[key], key).toMatch(new RegExp(`^${issuerOf(slug).href}/`));
      }
      expect(meta.code_challenge_methods_supported).toEqual(['S256']);
      expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'roles', 'offline_access']));
    }
  });

  it('answers an unknown tenant as every tenant route does, and keeps the REST routes beside it', async () => {
    const unknown = await fetch(`${base}/api/v1/tenants/nope/oidc/.well-known/openid-configuration`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toContain('application/problem+json');
    expect((await api('oa', 'oidc/clients')).status).toBe(401);
    expect((await api('oa', 'oidc/clients', { token: tokens.oa })).status).toBe(200);
    expect((await api('oa', 'oidc/signing-keys/nothing', { token: tokens.oa })).status).toBe(404);
  });
});

describe('authorization code flow', () => {
  it('signs in on the pages, and the ID token verifies against the JWKS with roles; userinfo, refresh', async () => {
    const config = await configFor('oa', confidential);
    const { tokens: set } = await signIn(config, admins.oa!.email);
    const claims = set.claims()!;
    expect(claims.sub).toBe(admins.oa!.id);
    expect(claims.email).toBe(admins.oa!.email);
    const service = decodeJwt(tokens.oa!);
    expect(claims.roles).toEqual(service.roles);
    expect(claims.permissions).toEqual(service.permissions);

    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!));
    const verified = await jwtVerify(set.id_token!, jwks, { issuer: issuerOf('oa').href, audience: confidential.client_id });
    expect(verified.protectedHeader.alg).toBe('RS256');
    expect(verified.payload.roles).toEqual(service.roles);

    const info = await oidc.fetchUserInfo(config, set.access_token, claims.sub);
    expect(info).toMatchObject({ sub: admins.oa!.id, email: admins.oa!.email, email_verified: true, roles: service.roles });

    expect(set.refresh_token).toBeTruthy();
    const refreshed = await oidc.refreshTokenGrant(config, set.refresh_token!);
    expect(refreshed.access_token).not.toBe(set.access_token);
    expect((await oidc.fetchUserInfo(config, refreshed.access_token, claims.sub)).sub).toBe(admins.oa!.id);

    // The sign-in is a session of the service, listed in me/sessions.
    const sessions = await db('oa').selectFrom('user_sessions').select(['id', 'revoked_at']).where('user_id', '=', admins.oa!.id).orderBy('created_at', 'desc').execute();
    const linked = await db('oa').selectFrom('oidc_payloads').select('session_id').where('model', '=', 'Session').where('session_id', 'is not', null).execute();
    expect(sessions.map((s) => s.id)).toEqual(expect.arrayContaining(linked.map((l) => l.session_id)));
  });

  it('requires PKCE of a public client, and signs it in with it', async () => {
    const config = await configFor('oa', publicClient);
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri(), scope: 'openid', state: 'x' });
    const res = await new Browser().request(url.href);
    expect(res.location).toMatch(/error=invalid_request/);
    const { tokens: set } = await signIn(config, admins.oa!.email);
    expect(set.claims()!.sub).toBe(admins.oa!.id);
  });

  it('refuses another tenant\'s client and a redirect URI that is not registered', async () => {
    const elsewhere = await oidc.discovery(issuerOf('ob'), confidential.client_id, undefined, oidc.ClientSecretBasic(confidential.client_secret!), { execute: [oidc.allowInsecureRequests] });
    const refused = await authorize(elsewhere);
    expect(refused.page.status).toBe(400);
    expect(refused.page.body).toContain('invalid_client');
    const token = await fetch(elsewhere.serverMetadata().token_endpoint!, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${confidential.client_id}:${confidential.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&code=abc&redirect_uri=' + encodeURIComponent(redirectUri()),
    });
    expect(token.status).toBe(401);
    expect(await token.json()).toMatchObject({ error: 'invalid_client' });

    const config = await configFor('oa', confidential);
    const wrong = await authorize(config, { redirect_uri: 'https://evil.example/callback' });
    expect(wrong.page.status).toBe(400);
    expect(wrong.page.body).toContain('invalid_redirect_uri');
    expect(wrong.page.headers.get('content-security-policy')).toContain("default-src 'none'");
  });

  it('shows a wrong password as an error on the page, counted toward the lockout', async () => {
    const user = await seedUser(t, 'oa', { email: 'wrong@oa.example' });
    const config = await configFor('oa', confidential);
    const flow = await authorize(config);
    const page = await flow.browser.request(new URL(formAction(flow.page.body), base).href, { form: { email: user.email, password: 'not the password' } });
    expect(page.status).toBe(401);
    expect(page.body).toContain('role="alert"');
    expect(page.body).toContain('value="wrong@oa.example"');
    expect(page.headers.get('content-security-policy')).toContain(`form-action 'self' ${base}`);
    const row = await db('oa').selectFrom('users').select('failed_login_count').where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.failed_login_count).toBe(1);
    // The same interaction still signs in with the right one.
    const { tokens: set } = await finish(config, flow, await flow.browser.follow(new URL(formAction(page.body), base).href, { form: { email: user.email, password: PASSWORD } }));
    expect(set.claims()!.sub).toBe(user.id);
  });

  it('asks a user with TOTP for a code after the password', async () => {
    const user = await seedUser(t, 'oa', { email: 'totp@oa.example' });
    const token = (await login(t.app, 'oa', user.email)).access_token;
    const started = (await (await api('oa', 'me/mfa/totp', { method: 'POST', token, body: JSON.stringify({ password: PASSWORD }) })).json()) as { secret: string };
    const codeAt = (offset: number) => authenticator.clone({ epoch: Date.now() + offset * 30_000 }).generate(started.secret);
    // Confirmed with the previous step's code (drift is allowed), so the current one is still unused; 4 s from a step's edge.
    if (30_000 - (Date.now() % 30_000) < 4000) await new Promise((r) => setTimeout(r, 4100));
    expect((await api('oa', 'me/mfa/totp/confirm', { method: 'POST', token, body: JSON.stringify({ code: codeAt(-1) }) })).status).toBe(200);

    const config = await configFor('oa', confidential);
    const flow = await authorize(config);
    const mfa = await flow.browser.request(new URL(formAction(flow.page.body), base).href, { form: { email: user.email, password: PASSWORD } });
    expect(mfa.status, mfa.body).toBe(200);
    const mfaToken = hiddenValue(mfa.body, 'mfa_token');
    expect(mfaToken).toMatch(/^mfa_/);
    const wrong = await flow.browser.request(new URL(formAction(mfa.body), base).href, { form: { mfa_token: mfaToken!, code: 'aaaa-bbbb' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('name="code"');
    const done = await flow.browser.follow(new URL(formAction(wrong.body), base).href, { form: { mfa_token: mfaToken!, code: codeAt(0) } });
    const { tokens: set } = await finish(config, flow, done);
    expect(set.claims()!.sub).toBe(user.id);
    expect(set.claims()!.amr).toEqual(['pwd', 'otp']);
  });
});

describe('second factors on the pages', () => {
  const passkeyAction = (html: string) => /<form id="passkey-form" method="post" action="([^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&');
  const setMfa = async (slug: string, mode: string) => {
    await db(slug).updateTable('settings').set({ value: JSON.stringify(mode) }).where('key', '=', 'auth.mfa').execute();
    await t.services.changes.committed(await t.services.directory.resolve(slug), [{ kind: 'settings' }]);
  };
  /** The page's own origin and host: this suite's PUBLIC_URL. */
  const here = () => ({ origin: base, rpId: new URL(base).hostname });
  const options = async (path: string, body: object) => {
    const res = await api('ob', path, { method: 'POST', body: JSON.stringify(body) });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as { challenge: string; user?: { id: string } };
  };

  it('sets up TOTP when the tenant requires a factor: a wrong code keeps the key, the right one shows the recovery codes once, then the application', async () => {
    const user = await seedUser(t, 'ob', { email: 'enrol@ob.example' });
    const res = await api('ob', 'oidc/clients', { method: 'POST', token: tokens.ob, body: JSON.stringify({ name: 'Wiki', type: 'confidential', redirect_uris: [redirectUri()] }) });
    expect(res.status).toBe(201);
    const config = await configFor('ob', (await res.json()) as Registered);
    await setMfa('ob', 'required');
    try {
      const flow = await authorize(config);
      const enrol = await flow.browser.request(new URL(formAction(flow.page.body), base).href, { form: { email: user.email, password: PASSWORD } });
      expect(enrol.status, enrol.body).toBe(200);
      expect(enrol.body).toContain('Set up a second factor');
      const secret = /<code id="secret">([A-Z2-7]{16,})<\/code>/.exec(enrol.body)![1]!;
      expect(enrol.body).toContain('href="otpauth://totp/');
      // The key is the server's, never taken from the form.
      expect(enrol.body).not.toContain('name="secret"');
      // The page's script is allowed by its hash, and may call the API on this origin.
      expect(enrol.headers.get('content-security-policy')).toMatch(/script-src 'sha256-[^']+'; connect-src 'self'/);
      const fields = { mfa_token: hiddenValue(enrol.body, 'mfa_token')!, secret: 'AAAAAAAAAAAAAAAA', otpauth_url: 'https://evil.example/' };
      const wrong = await flow.browser.request(new URL(formAction(enrol.body), base).href, { form: { ...fields, code: '000000' === authenticator.generate(secret) ? '111111' : '000000' } });
      // A wrong code is a failed login, as at auth/mfa/totp/confirm.
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('role="alert"');
      // Shown again with the same pending key, whatever the form said.
      expect(wrong.body).toContain(`<code id="secret">${secret}</code>`);
      expect(wrong.body).not.toContain('evil.example');
      const codes = await flow.browser.request(new URL(formAction(wrong.body), base).href, { form: { ...fields, code: authenticator.generate(secret) } });
      expect(codes.status, codes.body).toBe(200);
      expect(codes.body).toContain('Save your recovery codes');
      expect([...codes.body.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)]).toHaveLength(10);
      const next = /<a class="button" href="([^"]+)">Continue to Wiki<\/a>/.exec(codes.body)![1]!.replaceAll('&amp;', '&');
      const { tokens: set } = await finish(config, flow, await flow.browser.follow(new URL(next, base).href));
      expect(set.claims()).toMatchObject({ sub: user.id, amr: ['pwd', 'otp'] });
      expect((await db('ob').selectFrom('mfa_totp').select('confirmed_at').where('user_id', '=', user.id).executeTakeFirstOrThrow()).confirmed_at).not.toBeNull();
    } finally {
      await setMfa('ob', 'optional');
    }
  });

  it('takes a passkey as the second factor and alone (passwordless), and a forged one back to the sign-in form', async () => {
    const user = await seedUser(t, 'ob', { email: 'passkey@ob.example' });
    const res = await api('ob', 'oidc/clients', { method: 'POST', token: tokens.ob, body: JSON.stringify({ name: 'Shop', type: 'confidential', redirect_uris: [redirectUri()] }) });
    const config = await configFor('ob', (await res.json()) as Registered);
    const token = (await login(t.app, 'ob', user.email)).access_token;
    const device = new SoftAuthenticator();
    const registration = await api('ob', 'me/mfa/passkeys/registration-options', { method: 'POST', token, body: JSON.stringify({ password: PASSWORD }) });
    const created = await api('ob', 'me/mfa/passkeys', { method: 'POST', token, body: JSON.stringify({ response: device.register((await registration.json()) as { challenge: string }, here()) }) });
    expect(created.status, await created.clone().text()).toBe(201);

    // Second factor: the password, then the passkey's assertion to this mfa_token's challenge.
    const flow = await authorize(config);
    const mfa = await flow.browser.request(new URL(formAction(flow.page.body), base).href, { form: { email: user.email, password: PASSWORD } });
    expect(mfa.body).toContain('data-passkey="get"');
    const mfaToken = hiddenValue(mfa.body, 'mfa_token')!;
    const assertion = device.assert(await options('auth/mfa/passkey-options', { mfa_token: mfaToken }), here());
    const second = await flow.browser.follow(new URL(passkeyAction(mfa.body), base).href, { form: { mfa_token: mfaToken, methods: 'webauthn,recovery_code', webauthn: JSON.stringify(assertion) } });
    expect((await finish(config, flow, second)).tokens.claims()).toMatchObject({ sub: user.id, amr: ['pwd', 'hwk'] });

    // Passwordless: the sign-in page's passkey form, no password.
    const alone = await authorize(config);
    expect(alone.page.body).toContain('data-passkey="get"');
    const forged = await alone.browser.request(new URL(passkeyAction(alone.page.body), base).href, { form: { webauthn: '{"id":"x"}' } });
    expect(forged.status).toBe(401);
    expect(forged.body).toContain('name="password"');
    expect(forged.body).toContain('role="alert"');
    const signed = device.assert(await options('auth/passkey/options', {}), here());
    const done = await alone.browser.follow(new URL(passkeyAction(forged.body), base).href, { form: { webauthn: JSON.stringify(signed) } });
    expect((await finish(config, alone, done)).tokens.claims()).toMatchObject({ sub: user.id, amr: ['hwk', 'user'] });
    // On the other tenant's issuer the same passkey is unknown.
    const other = await authorize(await configFor('oa', confidential));
    const elsewhere = await other.browser.request(new URL(passkeyAction(other.page.body), base).href, { form: { webauthn: JSON.stringify(device.assert(await options('auth/passkey/options', {}), here())) } });
    expect(elsewhere.status).toBe(401);
  });
});

describe('sessions', () => {
  it('ends the provider\'s tokens when the service session is revoked', async () => {
    const user = await seedUser(t, 'oa', { email: 'revoked@oa.example' });
    const config = await configFor('oa', confidential);
    const { tokens: set } = await signIn(config, user.email);
    const sub = set.claims()!.sub;
    expect((await oidc.fetchUserInfo(config, set.access_token, sub)).sub).toBe(user.id);

    const own = await login(t.app, 'oa', user.email);
    const listed = (await (await api('oa', 'me/sessions', { token: own.access_token })).json()) as { items: { id: string }[] };
    const signIn_ = listed.items.find((s) => s.id !== own.sid)!;
    expect(signIn_).toBeDefined();
    expect((await api('oa', `me/sessions/${signIn_.id}`, { method: 'DELETE', token: own.access_token })).status).toBe(204);

    await expect(oidc.fetchUserInfo(config, set.access_token, sub)).rejects.toThrow();
    await expect(oidc.refreshTokenGrant(config, set.refresh_token!)).rejects.toThrow();
  });

  it('revokes a token at the revocation endpoint', async () => {
    const user = await seedUser(t, 'oa', { email: 'revocation@oa.example' });
    const config = await configFor('oa', confidential);
    const { tokens: set } = await signIn(config, user.email);
    await oidc.tokenRevocation(config, set.access_token);
    await expect(oidc.fetchUserInfo(config, set.access_token, user.id)).rejects.toThrow();
    await oidc.tokenRevocation(config, set.refresh_token!);
    await expect(oidc.refreshTokenGrant(config, set.refresh_token!)).rejects.toThrow();
  });

  it('signs out through end_session (RP-initiated logout), ending the service session too', async () => {
    const user = await seedUser(t, 'oa', { email: 'logout@oa.example' });
    const config = await configFor('oa', confidential);
    const { tokens: set, browser } = await signIn(config, user.email);
    const url = oidc.buildEndSessionUrl(config, { id_token_hint: set.id_token!, post_logout_redirect_uri: logoutUri(), state: 'bye' });
    const confirm = await browser.follow(url.href);
    expect(confirm.status, confirm.body).toBe(200);
    expect(confirm.body).toContain('Sign out');
    const xsrf = hiddenValue(confirm.body, 'xsrf')!;
    const done = await browser.follow(new URL(formAction(confirm.body), base).href, { form: { xsrf, logout: 'yes' } });
    expect(done.location).toBe(`${logoutUri()}?state=bye`);
    const sessions = await db('oa').selectFrom('user_sessions').select('revoked_at').where('user_id', '=', user.id).execute();
    expect(sessions.length).toBe(1);
    expect(sessions[0]!.revoked_at).not.toBeNull();
    await expect(oidc.fetchUserInfo(config, set.access_token, user.id)).rejects.toThrow();
  });
});

describe('refusals', () => {
  it('sends a denied consent back to the application as access_denied', async () => {
    const config = await configFor('oa', confidential);
    const flow = await authorize(config);
    const consent = await flow.browser.follow(new URL(formAction(flow.page.body), base).href, { form: { email: admins.oa!.email, password: PASSWORD } });
    expect(consent.body).toContain('Deny');
    const denied = await flow.browser.follow(new URL(formAction(consent.body, 1), base).href, { form: {} });
    expect(denied.location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?error=access_denied/);
  });

  it('refuses a sign-in form sent from another site', async () => {
    const config = await configFor('oa', confidential);
    const flow = await authorize(config);
    const res = await fetch(new URL(formAction(flow.page.body), base).href, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: [...flow.browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ email: admins.oa!.email, password: PASSWORD }).toString(),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(res.headers.get('location')).toBeNull();
  });

  it('answers 403 problem+json for a suspended tenant\'s issuer', async () => {
    const system = { authorization: `Bearer ${await t.systemToken()}` };
    const listed = (await (await fetch(`${base}/api/v1/tenants`, { headers: system })).json()) as { items: { id: string; slug: string }[] };
    const ob = listed.items.find((x) => x.slug === 'ob')!;
    const patch = (status: string) => fetch(`${base}/api/v1/tenants/${ob.id}`, { method: 'PATCH', headers: { ...system, 'content-type': 'application/json' }, body: JSON.stringify({ status }) });
    expect((await patch('suspended')).status).toBe(200);
    try {
      const res = await fetch(`${issuerOf('ob').href}/.well-known/openid-configuration`);
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'tenant.suspended' });
    } finally {
      expect((await patch('active')).status).toBe(200);
    }
    expect((await fetch(`${issuerOf('ob').href}/.well-known/openid-configuration`)).status).toBe(200);
  });
});

describe('signing keys', () => {
  it('publishes a rotation\'s new key once the provider reloads its keystore', async () => {
    const jwks = async () => ((await (await fetch(`${issuerOf('ob').href}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const before = await jwks();
    expect(before).toHaveLength(1);
    const rotated = await api('ob', 'oidc/signing-keys/rotate', { method: 'POST', token: tokens.ob });
    expect(rotated.status).toBe(200);
    const { kid } = (await rotated.json()) as { kid: string };
    // Each instance reloads within a minute (the keystore's validity); a tenant change reloads at once.
    const ob = await t.services.directory.resolve('ob');
    await t.services.oidcProviders.forget(ob, { kind: 'tenant' });
    expect((await jwks()).sort()).toEqual([...before, kid].sort());
  });
});

describe('expired rows', () => {
  it('are swept for the tenants whose providers are kept', async () => {
    await t.services.oidcProviders.get(await t.services.directory.resolve('oa'));
    await db('oa').insertInto('oidc_payloads').values({ model: 'AccessToken', id: 'gone', payload: JSON.stringify({}), expires_at: new Date(Date.now() - 1000) }).execute();
    await db('oa').insertInto('oidc_payloads').values({ model: 'AccessToken', id: 'kept', payload: JSON.stringify({}), expires_at: new Date(Date.now() + 60_000) }).execute();
    expect(await t.services.oidcProviders.sweep()).toBeGreaterThanOrEqual(1);
    const ids = (await db('oa').selectFrom('oidc_payloads').select('id').where('model', '=', 'AccessToken').where('id', 'in', ['gone', 'kept']).execute()).map((r) => r.id);
    expect(ids).toEqual(['kept']);
  });
});

describe('the service as npm start runs it', () => {
  it('connects an application to the demo tenant as docs/OIDC.md says', async () => {
    const database = await createTestDatabase();
    const port = await freePort();
    const service = `http://127.0.0.1:${port}`;
    const { child, output } = await startTs('src/main.ts', childServiceEnv(database.url, { SERVICE_PORT: String(port), PUBLIC_URL: service }), /Server listening at/);
    try {
      const password = /admin login\s+admin@demo\.local \/ (\S+)/.exec(output())![1]!;
      const signedIn = await fetch(`${service}/api/v1/tenants/demo/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@demo.local', password }) });
      const token = ((await signedIn.json()) as { access_token: string }).access_token;
      const created = await fetch(`${service}/api/v1/tenants/demo/oidc/clients`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Local app', type: 'confidential', redirect_uris: ['http://localhost:3000/callback'], post_logout_redirect_uris: ['http://localhost:3000/'] }),
      });
      expect(created.status).toBe(201);
      const registered = (await created.json()) as Registered;

      const config = await oidc.discovery(new URL(`${service}/api/v1/tenants/demo/oidc`), registered.client_id, undefined, oidc.ClientSecretBasic(registered.client_secret!), { execute: [oidc.allowInsecureRequests] });
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const to = oidc.buildAuthorizationUrl(config, {
        redirect_uri: 'http://localhost:3000/callback',
        scope: 'openid profile email roles offline_access',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        prompt: 'consent',
        state,
      });
      const browser = new Browser(['http://localhost:3000/']);
      const login = await browser.follow(to.href);
      const consent = await browser.follow(new URL(formAction(login.body), service).href, { form: { email: 'admin@demo.local', password } });
      const back = await browser.follow(new URL(formAction(consent.body), service).href, { form: {} });
      const tokenSet = await oidc.authorizationCodeGrant(config, new URL(back.location!), { pkceCodeVerifier: verifier, expectedState: state });
      const claims = tokenSet.claims()!;
      expect(claims).toMatchObject({ email: 'admin@demo.local', roles: ['admin'], amr: ['pwd'] });
      expect((await oidc.fetchUserInfo(config, tokenSet.access_token, claims.sub)).email).toBe('admin@demo.local');
      expect(tokenSet.refresh_token).toBeTruthy();
    } finally {
      child.kill('SIGTERM');
      await exited(child);
      await database.drop();
    }
  }, 120_000);
});
