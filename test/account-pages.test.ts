import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { render, text, type MessageKey, type Params } from '../src/i18n/index.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, PASSWORD, seedUser } from './support/tenants.js';

/** The account pages the mailed links open: reset-password, accept-invitation, verify-email. Two tenants. */
const t = useTenants(['pa', 'pb']);

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);
const say = (locale: string, key: MessageKey, params?: Params) => render(locale, text(key, params));
/** As the page writes text: HTML-escaped. */
const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const SAME_ORIGIN = { 'sec-fetch-site': 'same-origin', origin: 'null' };

const getPage = (path: string, query: Record<string, string>, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'GET', url: `/${path}?${new URLSearchParams(query).toString()}`, headers });
const postPage = (path: string, form: Record<string, string>, headers: Record<string, string> = SAME_ORIGIN) =>
  t.app.inject({ method: 'POST', url: `/${path}`, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(form).toString() });

/** The one-time link of the newest mail to `email`: its page, tenant and token. */
function linkTo(email: string): { page: string; tenant: string; token: string } {
  const mail = t.mailer.sent.filter((m) => m.to === email).at(-1)!;
  const url = new URL(/https?:\/\/\S+/.exec(mail.text)![0]);
  expect(url.origin).toBe('http://app.example');
  return { page: url.pathname.slice(1), tenant: url.searchParams.get('tenant')!, token: url.searchParams.get('token')! };
}

async function resetLink(slug: string, email: string) {
  expect((await t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/password-reset/request`, payload: { email } })).statusCode).toBe(202);
  await t.services.auth.settled();
  return linkTo(email);
}

const canLogin = (slug: string, email: string, password: string) => login(t.app, slug, email, password).then(() => true, () => false);

/** The headers every page answer carries: a strict CSP whose style hash is the page's own stylesheet, no caching, no referrer. */
function expectPageHeaders(res: Awaited<ReturnType<typeof getPage>>) {
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
  const csp = String(res.headers['content-security-policy']);
  for (const directive of ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) expect(csp).toContain(directive);
  expect(csp).not.toMatch(/unsafe|script-src/);
  const style = /<style>([\s\S]*?)<\/style>/.exec(res.body)![1]!;
  expect(csp).toContain(`style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`);
}

describe('reset-password', () => {
  it('the mail links to the page; GET renders the form in the reader\'s language (Accept-Language, else ?lang=), labelled, with the token', async () => {
    const user = await seedUser(t, 'pa', { email: 'rita@pa.example' });
    const link = await resetLink('pa', user.email);
    expect(link).toMatchObject({ page: 'reset-password', tenant: 'pa' });
    for (const [locale, headers, query] of [
      ['en', {}, {}],
      ['de', { 'accept-language': 'de-CH, fr;q=0.8' }, {}],
      ['fr', { 'accept-language': 'de' }, { lang: 'fr' }],
    ] as const) {
      const res = await getPage('reset-password', { tenant: link.tenant, token: link.token, ...query }, headers);
      expect(res.statusCode, locale).toBe(200);
      expectPageHeaders(res);
      expect(res.headers['content-language']).toBe(locale);
      expect(res.body).toContain(`<html lang="${locale}">`);
      expect(res.body).toContain(`<h1>${html(say(locale, 'page.reset.title'))}</h1>`);
      expect(res.body).toContain(`<label for="new_password">${html(say(locale, 'page.password'))}</label>`);
      expect(res.body).toContain(`<label for="new_password_repeat">${html(say(locale, 'page.password_repeat'))}</label>`);
      expect(res.body).toContain(html(say(locale, 'page.password_hint', { min: 12 })));
      expect(res.body).toContain(`<input type="hidden" name="token" value="${link.token}">`);
      expect(res.body).toMatch(/<form method="post" action="reset-password">/);
      expect(res.body).not.toMatch(/<script/);
    }
    // Nothing was used by looking.
    expect(await db('pa').selectFrom('password_reset_tokens').select('used_at').where('user_id', '=', user.id).executeTakeFirstOrThrow()).toEqual({ used_at: null });
  });

  it('a weak or mistyped password is shown beside the field, translated, and changes nothing', async () => {
    const user = await seedUser(t, 'pa', { email: 'wendy@pa.example' });
    const link = await resetLink('pa', user.email);
    const weak = await postPage('reset-password', { tenant: 'pa', token: link.token, lang: 'de', new_password: 'short', new_password_repeat: 'short' });
    expect(weak.statusCode).toBe(400);
    expectPageHeaders(weak);
    expect(weak.body).toContain(html(say('de', 'title.invalid_input')));
    expect(weak.body).toContain(`<p id="new_password-error" class="error">${html(say('de', 'reason.min_length', { limit: 12 }))}</p>`);
    expect(weak.body).toMatch(/id="new_password"[^>]*aria-describedby="new_password-hint new_password-error"[^>]*aria-invalid="true"/);
    const differ = await postPage('reset-password', { tenant: 'pa', token: link.token, new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrasf' });
    expect(differ.statusCode).toBe(400);
    expect(differ.body).toContain(html(say('en', 'reason.passwords_differ')));
    expect(await canLogin('pa', user.email, PASSWORD)).toBe(true);
    // The link still works after a refusal of what was typed.
    expect((await postPage('reset-password', { tenant: 'pa', token: link.token, new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrase' })).statusCode).toBe(200);
  });

  it('a good post sets the password and ends every session, as the API does; the link then is used up', async () => {
    const user = await seedUser(t, 'pa', { email: 'sam@pa.example' });
    const session = await login(t.app, 'pa', user.email);
    const link = await resetLink('pa', user.email);
    const res = await postPage('reset-password', { tenant: 'pa', token: link.token, lang: 'es', new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrase' });
    expect(res.statusCode).toBe(200);
    expectPageHeaders(res);
    expect(res.headers['content-language']).toBe('es');
    expect(res.body).toContain(html(say('es', 'page.reset.done')));
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/pa/me', headers: bearer(session.access_token) })).statusCode).toBe(401);
    expect(await canLogin('pa', user.email, PASSWORD)).toBe(false);
    expect(await canLogin('pa', user.email, 'a brand new passphrase')).toBe(true);

    const again = await postPage('reset-password', { tenant: 'pa', token: link.token, new_password: 'yet another passphrase', new_password_repeat: 'yet another passphrase' });
    expect(again.statusCode).toBe(400);
    expectPageHeaders(again);
    expect(again.body).toContain(html(say('en', 'page.link_invalid.title')));
    expect(again.body).toContain(html(say('en', 'page.reset.link_invalid')));
    expect(again.body).not.toMatch(/<form/);
    expect(await canLogin('pa', user.email, 'yet another passphrase')).toBe(false);
    // Opened again, the used link says so at once: no form to fill in first.
    const opened = await getPage('reset-password', { tenant: 'pa', token: link.token });
    expect(opened.statusCode).toBe(400);
    expect(opened.body).toContain(html(say('en', 'page.reset.link_invalid')));
    expect(opened.body).not.toMatch(/<form/);
  });

  it('an expired token, or one of another tenant, is a clear 4xx page and changes nothing', async () => {
    const user = await seedUser(t, 'pa', { email: 'ella@pa.example' });
    const link = await resetLink('pa', user.email);
    // Tenant pb has a user of the same address: the token of pa still means nothing there.
    await seedUser(t, 'pb', { email: 'ella@pa.example' });
    const foreign = await postPage('reset-password', { tenant: 'pb', token: link.token, new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrase' }, { 'accept-language': 'fr' });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.body).toContain(html(say('fr', 'page.link_invalid.title')));
    expect(await canLogin('pb', user.email, PASSWORD)).toBe(true);
    expect(await canLogin('pa', user.email, PASSWORD)).toBe(true);
    const foreignPage = await getPage('reset-password', { tenant: 'pb', token: link.token });
    expect(foreignPage.statusCode).toBe(400);
    expect(foreignPage.body).not.toMatch(/<form/);
    expect((await getPage('reset-password', { tenant: 'pa', token: link.token })).body).toMatch(/<form/);

    await db('pa').updateTable('password_reset_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', user.id).execute();
    const expired = await postPage('reset-password', { tenant: 'pa', token: link.token, new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrase' });
    expect(expired.statusCode).toBe(400);
    expect(expired.body).toContain(html(say('en', 'page.link_invalid.intro')));
    expect(await canLogin('pa', user.email, PASSWORD)).toBe(true);
    const expiredPage = await getPage('reset-password', { tenant: 'pa', token: link.token });
    expect(expiredPage.statusCode).toBe(400);
    expect(expiredPage.body).not.toMatch(/<form/);
  });

  it('a missing token or tenant, or an unknown tenant, is a 4xx page, never a 500', async () => {
    const cases: [Record<string, string>, number][] = [
      [{ tenant: 'pa' }, 400],
      [{ tenant: 'pa', token: '' }, 400],
      [{ tenant: 'pa', token: 'x'.repeat(600) }, 400],
      [{ token: 'abc' }, 404],
      [{ tenant: 'nosuchtenant', token: 'abc' }, 404],
      [{ tenant: 'Not A Slug!', token: 'abc' }, 404],
      [{}, 404],
    ];
    for (const [query, status] of cases) {
      const res = await getPage('reset-password', query, { 'accept-language': 'de' });
      expect(res.statusCode, JSON.stringify(query)).toBe(status);
      expectPageHeaders(res);
      expect(res.body).toContain(html(say('de', 'page.link_invalid.title')));
    }
    // A repeated parameter, a NUL, a body that is not a form: still pages.
    const repeated = await t.app.inject({ method: 'GET', url: '/reset-password?tenant=pa&tenant=pb&token=a&token=b' });
    expect(repeated.statusCode).toBe(400); // the last of each: pb, and a token it never issued
    expect(repeated.headers['content-type']).toBe('text/html; charset=utf-8');
    const nul = await t.app.inject({ method: 'GET', url: '/reset-password?tenant=pa&token=a%00b' });
    expect(nul.statusCode).toBe(400);
    expect(nul.headers['content-type']).toBe('text/html; charset=utf-8');
    const json = await t.app.inject({ method: 'POST', url: '/reset-password', headers: { 'content-type': 'text/plain' }, payload: 'token=x' });
    expect(json.statusCode).toBe(415);
    expect(json.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('refuses a post from another site (Sec-Fetch-Site, else Origin), and the link still works from the page', async () => {
    const user = await seedUser(t, 'pa', { email: 'csrf@pa.example' });
    const link = await resetLink('pa', user.email);
    const form = { tenant: 'pa', token: link.token, new_password: 'a brand new passphrase', new_password_repeat: 'a brand new passphrase' };
    const crossSite: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site', origin: 'null' }];
    for (const headers of crossSite) {
      const res = await postPage('reset-password', form, { ...headers, 'accept-language': 'de' });
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expectPageHeaders(res);
      expect(res.body).toContain(html(say('de', 'error.request.cross_site')));
      expect(res.body).toContain(html(say('de', 'title.forbidden')));
    }
    expect(await canLogin('pa', user.email, PASSWORD)).toBe(true);
    // The service's own origin (the address the request came to) passes.
    expect((await postPage('reset-password', form, { origin: 'http://localhost:80' })).statusCode).toBe(200);
  });

  it('shows the tenant\'s branding: product name, https logo (allowed by the policy), colour; unsafe values are dropped', async () => {
    const put = (value: unknown) => t.app.inject({ method: 'PUT', url: '/api/v1/tenants/pb/settings/branding', headers: bearer(t.tokens.pb), payload: { value } });
    expect((await put({ product_name: 'Bee <Portal>', logo_url: 'https://cdn.bee.example/logo.png', primary_color: '#aa3300' })).statusCode).toBe(200);
    const user = await seedUser(t, 'pb', { email: 'brand@pb.example' });
    const link = await resetLink('pb', user.email);
    const res = await getPage('reset-password', { tenant: 'pb', token: link.token });
    expectPageHeaders(res);
    expect(res.body).toContain('<p class="product">Bee &lt;Portal&gt;</p>');
    expect(res.body).toContain('<img src="https://cdn.bee.example/logo.png" alt="">');
    expect(res.body).toContain('--brand:#aa3300');
    expect(res.headers['content-security-policy']).toContain('img-src https://cdn.bee.example;');
    expect((await put({ product_name: null, logo_url: 'javascript:alert(1)', primary_color: 'red;}body{display:none' })).statusCode).toBe(200);
    const plain = await getPage('reset-password', { tenant: 'pb', token: link.token });
    expect(plain.body).not.toMatch(/<img|javascript|display:none/);
    expect(plain.headers['content-security-policy']).not.toContain('img-src');
  });
});

describe('accept-invitation', () => {
  it('the invitation links to the page; it renders translated, refuses weak passwords and foreign tenants, then activates the account once', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/pa/users', headers: bearer(t.tokens.pa), payload: { email: 'ivy@pa.example', roles: ['viewer'] } });
    expect(created.statusCode).toBe(201);
    const link = linkTo('ivy@pa.example');
    expect(link).toMatchObject({ page: 'accept-invitation', tenant: 'pa' });
    for (const locale of ['es', 'de']) {
      const res = await getPage('accept-invitation', { tenant: 'pa', token: link.token }, { 'accept-language': locale });
      expect(res.statusCode).toBe(200);
      expectPageHeaders(res);
      expect(res.body).toContain(`<h1>${html(say(locale, 'page.invite.title', { product: 'pa' }))}</h1>`);
      expect(res.body).toContain(html(say(locale, 'page.invite.submit')));
      expect(res.body).toContain(`<label for="new_password">${html(say(locale, 'page.password'))}</label>`);
    }
    const form = { tenant: 'pa', token: link.token, new_password: 'my chosen passphrase', new_password_repeat: 'my chosen passphrase' };
    expect((await postPage('accept-invitation', { ...form, tenant: 'pb' })).statusCode).toBe(400);
    const weak = await postPage('accept-invitation', { ...form, new_password: 'tiny', new_password_repeat: 'tiny' });
    expect(weak.statusCode).toBe(400);
    expect(weak.body).toContain(html(say('en', 'reason.min_length', { limit: 12 })));
    const status = () => db('pa').selectFrom('users').select(['status', 'is_email_verified']).where('email', '=', 'ivy@pa.example').executeTakeFirstOrThrow();
    expect(await status()).toEqual({ status: 'invited', is_email_verified: false });

    const done = await postPage('accept-invitation', form);
    expect(done.statusCode).toBe(200);
    expect(done.body).toContain(html(say('en', 'page.invite.done')));
    expect(await status()).toEqual({ status: 'active', is_email_verified: true });
    expect(await canLogin('pa', 'ivy@pa.example', 'my chosen passphrase')).toBe(true);
    const again = await postPage('accept-invitation', { ...form, new_password: 'someone elses passphrase', new_password_repeat: 'someone elses passphrase' });
    expect(again.statusCode).toBe(400);
    expect(again.body).toContain(html(say('en', 'page.invite.link_invalid')));
    expect(await canLogin('pa', 'ivy@pa.example', 'my chosen passphrase')).toBe(true);
    expect((await getPage('accept-invitation', { tenant: 'pa', token: link.token })).body).toContain(html(say('en', 'page.invite.link_invalid')));
  });
});

describe('verify-email', () => {
  it('the verification mail links to the page; one button verifies the address, on its own tenant only, once', async () => {
    const user = await seedUser(t, 'pb', { email: 'vera@pb.example', verified: false });
    const session = await login(t.app, 'pb', user.email);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/pb/me/email-verification', headers: bearer(session.access_token) })).statusCode).toBe(202);
    const link = linkTo(user.email);
    expect(link).toMatchObject({ page: 'verify-email', tenant: 'pb' });
    for (const locale of ['fr', 'en']) {
      const res = await getPage('verify-email', { tenant: 'pb', token: link.token, lang: locale });
      expect(res.statusCode).toBe(200);
      expectPageHeaders(res);
      expect(res.body).toContain(`<h1>${html(say(locale, 'page.verify.title'))}</h1>`);
      expect(res.body).toContain(`<button type="submit">${html(say(locale, 'page.verify.submit'))}</button>`);
      expect(res.body).not.toContain('type="password"');
    }
    const verified = async () => (await db('pb').selectFrom('users').select('is_email_verified').where('id', '=', user.id).executeTakeFirstOrThrow()).is_email_verified;
    const foreign = await postPage('verify-email', { tenant: 'pa', token: link.token });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.body).toContain(html(say('en', 'page.verify.link_invalid')));
    expect((await postPage('verify-email', { tenant: 'pb', token: link.token }, { 'sec-fetch-site': 'cross-site' })).statusCode).toBe(403);
    expect(await verified()).toBe(false);

    const done = await postPage('verify-email', { tenant: 'pb', token: link.token, lang: 'fr' });
    expect(done.statusCode).toBe(200);
    expect(done.body).toContain(html(say('fr', 'page.verify.done')));
    expect(await verified()).toBe(true);
    expect((await postPage('verify-email', { tenant: 'pb', token: link.token })).statusCode).toBe(400);
    const opened = await getPage('verify-email', { tenant: 'pb', token: link.token });
    expect(opened.statusCode).toBe(400);
    expect(opened.body).toContain(html(say('en', 'page.verify.link_invalid')));
    expect(opened.body).not.toMatch(/<form/);
  });

  it('an expired verification link is a 4xx page and verifies nothing', async () => {
    const user = await seedUser(t, 'pa', { email: 'late@pa.example', verified: false });
    const session = await login(t.app, 'pa', user.email);
    await t.app.inject({ method: 'POST', url: '/api/v1/tenants/pa/me/email-verification', headers: bearer(session.access_token) });
    const link = linkTo(user.email);
    await db('pa').updateTable('email_verification_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', user.id).execute();
    const res = await postPage('verify-email', { tenant: 'pa', token: link.token });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain(html(say('en', 'page.link_invalid.title')));
    expect((await db('pa').selectFrom('users').select('is_email_verified').where('id', '=', user.id).executeTakeFirstOrThrow()).is_email_verified).toBe(false);
  });
});

describe('the pages and the API', () => {
  it('are not in the OpenAPI document, and without CORS_ORIGINS no answer carries CORS headers', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => /reset-password$|verify-email$|accept-invitation$/.test(p) && !p.startsWith('/api/'))).toEqual([]);
    const preflight = await t.app.inject({ method: 'OPTIONS', url: '/api/v1/tenants/pa/users', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } });
    expect(preflight.statusCode).toBe(404);
    const get = await t.app.inject({ method: 'GET', url: '/api/v1/tenants/pa/users', headers: { ...bearer(t.tokens.pa), origin: 'https://app.example.com' } });
    expect(get.statusCode).toBe(200);
    expect(Object.keys({ ...preflight.headers, ...get.headers }).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    expect(get.headers.vary ?? '').not.toMatch(/origin/i);
  });
});
