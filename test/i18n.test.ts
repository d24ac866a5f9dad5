import { parse, TYPE, type MessageFormatElement } from '@formatjs/icu-messageformat-parser';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, KINDS } from '../src/error-codes.js';
import { DEFAULT_LOCALE, fromAcceptLanguage, LOCALES, negotiateLocale, render, source, text, type Locale, type MessageKey } from '../src/i18n/index.js';
import en from '../src/i18n/locales/en.js';
import { readerDate } from '../src/mail/compose.js';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/** SPEC §15: catalogues, negotiation, translated problems and mails. Two tenants. */
const t = useTenants(['la', 'lb']);

const KEYS = Object.keys(en) as MessageKey[];
const OTHERS = LOCALES.filter((l) => l !== DEFAULT_LOCALE);

/** A message's placeholders with their kinds (`count:plural`, `field:argument`), options' placeholders included. */
function placeholders(elements: MessageFormatElement[], out = new Set<string>()): Set<string> {
  for (const e of elements) {
    if (e.type === TYPE.argument || e.type === TYPE.number || e.type === TYPE.date || e.type === TYPE.time) out.add(`${e.value}:${TYPE[e.type]}`);
    if (e.type === TYPE.select || e.type === TYPE.plural) {
      out.add(`${e.value}:${TYPE[e.type]}:${e.type === TYPE.select ? Object.keys(e.options).sort().join('|') : 'plural'}`);
      for (const option of Object.values(e.options)) placeholders(option.value, out);
    }
  }
  return out;
}

describe('the catalogues', () => {
  it('have every key in every locale, with the same placeholders, and every message parses', () => {
    expect(LOCALES).toEqual(expect.arrayContaining(['en', 'de', 'fr', 'es']));
    for (const locale of LOCALES) {
      for (const key of KEYS) {
        const message = source(locale, key);
        expect(message, `${locale} ${key}`).toBeTypeOf('string');
        const expected = [...placeholders(parse(en[key], { ignoreTag: true }))].sort();
        expect([...placeholders(parse(message!, { ignoreTag: true }))].sort(), `${locale} ${key}`).toEqual(expected);
      }
    }
  });

  it('are translations, not copies of English', () => {
    // Identifiers-only messages may stay as they are; everything else is in the locale's words.
    for (const locale of OTHERS) {
      const same = KEYS.filter((key) => source(locale, key) === en[key] && /[a-z]{4,}/.test(en[key].replace(/\{[^}]*\}/g, '')));
      expect(same, locale).toEqual([]);
    }
  });

  it('have a message for every error code and a title for every kind', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(en).toHaveProperty([`error.${code}`]);
    for (const kind of Object.keys(KINDS)) expect(en).toHaveProperty([`title.${kind}`]);
  });

  it('format numbers and plurals for the locale', () => {
    expect(render('en', text('detail.body_too_large', { limit: 1048576 }))).toContain('1,048,576');
    expect(render('de', text('detail.body_too_large', { limit: 1048576 }))).toContain('1.048.576');
    expect(render('fr', text('detail.body_too_large', { limit: 1048576 }))).toMatch(/1\s048\s576/u);
    expect(render('en', text('reason.min_length', { limit: 1 }))).toBe('must be at least 1 character');
    expect(render('en', text('reason.min_length', { limit: 8 }))).toBe('must be at least 8 characters');
    expect(render('es', text('reason.min_length', { limit: 1 }))).toContain('1 carácter');
    expect(render('es', text('reason.min_length', { limit: 8 }))).toContain('8 caracteres');
    expect(render('de', text('mail.verify.validity', { hours: 1, expires: 'x' }))).toContain('1 Stunde ');
    expect(render('de', text('mail.verify.validity', { hours: 48, expires: 'x' }))).toContain('48 Stunden');
  });
});

describe('negotiation', () => {
  it('picks the best Accept-Language match by quality, falling back to the language of a regional tag', () => {
    expect(fromAcceptLanguage('de-CH, fr;q=0.8')).toBe('de');
    expect(fromAcceptLanguage('ja, es;q=0.4, fr;q=0.7')).toBe('fr');
    expect(fromAcceptLanguage('fr;q=0, es')).toBe('es');
    expect(fromAcceptLanguage('es;q=0.5, de;q=0.9')).toBe('de');
    expect(fromAcceptLanguage('ja, zh')).toBeUndefined();
    expect(fromAcceptLanguage('*')).toBe('en');
    expect(fromAcceptLanguage('fr;q=1.5, de;q=abc')).toBeUndefined();
    expect(fromAcceptLanguage('')).toBeUndefined();
  });

  it('prefers the user, then the header, then the tenant default, then English', () => {
    expect(negotiateLocale({ user: 'fr-CA', acceptLanguage: 'de', tenantDefault: 'es' })).toBe('fr');
    expect(negotiateLocale({ user: 'ja-JP', acceptLanguage: 'de', tenantDefault: 'es' })).toBe('de');
    expect(negotiateLocale({ user: null, acceptLanguage: 'ja', tenantDefault: 'es' })).toBe('es');
    expect(negotiateLocale({ user: null, acceptLanguage: undefined, tenantDefault: 'ja' })).toBe('en');
  });
});

const inject = (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, options: { token?: string; language?: string; payload?: object } = {}) =>
  t.app.inject({
    method,
    url: `/api/v1/tenants/${url}`,
    headers: { ...(options.token ? bearer(options.token) : {}), ...(options.language ? { 'accept-language': options.language } : {}) },
    ...(options.payload ? { payload: options.payload } : {}),
  });

const say = (locale: Locale, key: MessageKey, params?: Record<string, string | number>) => render(locale, text(key, params));

describe.each(OTHERS)('answers in %s', (locale) => {
  it('translates a validation error: title, detail and every field reason, never the validator English; type, status, code and fields stay', async () => {
    const res = await inject('POST', 'la/users', { token: t.tokens.la, language: `${locale};q=0.9, en;q=0.1`, payload: { email: 'not-an-email', first_name: 'x'.repeat(300), colour: 'blue' } });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-language']).toBe(locale);
    const body = res.json();
    const english = (await inject('POST', 'la/users', { token: t.tokens.la, payload: { email: 'not-an-email', first_name: 'x'.repeat(300), colour: 'blue' } })).json();
    expect(body).toMatchObject({ type: english.type, status: 400, code: 'request.invalid', title: say(locale, 'title.invalid_input') });
    expect(body.errors.map((e: { field: string }) => e.field).sort()).toEqual(english.errors.map((e: { field: string }) => e.field).sort());
    for (const error of body.errors as { field: string; reason: string }[]) {
      const englishReason = english.errors.find((e: { field: string }) => e.field === error.field).reason;
      expect(error.reason, error.field).not.toBe(englishReason);
      expect(body.detail).toContain(error.reason);
    }
    expect(body.errors).toContainEqual({ field: 'colour', reason: say(locale, 'reason.not_accepted') });
    expect(body.errors).toContainEqual({ field: 'first_name', reason: say(locale, 'reason.max_length', { limit: 200 }) });
    expect(body.title).not.toBe(english.title);
  });

  it('translates a refusal the service makes, with its values in place', async () => {
    const res = await inject('GET', 'la/users/00000000-0000-4000-8000-000000000000', { token: t.tokens.la, language: locale });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-language']).toBe(locale);
    expect(res.json()).toMatchObject({ code: 'user.not_found', title: say(locale, 'title.not_found'), detail: say(locale, 'error.user.not_found') });
    const password = await inject('POST', 'la/auth/password-reset/confirm', { language: locale, payload: { token: 'x'.repeat(43), new_password: 'Sh0rt!' } });
    expect(password.statusCode).toBe(400);
    expect(password.json().errors).toContainEqual({ field: 'new_password', reason: say(locale, 'reason.min_length', { limit: 12 }) });
  });

  it('writes the invitation in the invitee\'s language, with the expiry in their time zone, as text and HTML', async () => {
    const email = `invitee-${locale}@la.example`;
    const res = await inject('POST', 'la/users', { token: t.tokens.la, payload: { email, locale: `${locale}-XX`.slice(0, 5), timezone: 'Asia/Tokyo' } });
    expect(res.statusCode).toBe(201);
    const mail = t.mailer.sent.find((m) => m.to === email)!;
    expect(mail.language).toBe(locale);
    expect(mail.subject).toBe(say(locale, 'mail.invite.subject', { product: 'la' }));
    expect(mail.text).toContain(say(locale, 'mail.invite.intro', { product: 'la' }));
    expect(mail.text).toMatch(/token=[A-Za-z0-9_-]{43}/);
    const zone = new Intl.DateTimeFormat(locale, { timeZone: 'Asia/Tokyo', timeZoneName: 'short' }).formatToParts(new Date()).find((p) => p.type === 'timeZoneName')!.value;
    expect(mail.text).toContain(zone);
    expect(mail.html).toContain(`lang="${locale}"`);
    expect(mail.html).toContain(say(locale, 'mail.invite.action'));
    expect(mail.html).not.toContain(say('en', 'mail.invite.action'));
  });
});

describe('negotiation over HTTP, two tenants', () => {
  it('answers a signed-in user in their own locale, whatever the header says', async () => {
    const user = await seedUser(t, 'la', { email: 'francoise@la.example', roles: ['user'] });
    const session = await login(t.app, 'la', user.email);
    expect((await inject('PUT', 'la/me', { token: session.access_token, payload: { locale: 'fr-FR' } })).statusCode).toBe(200);
    const me = await inject('GET', 'la/me', { token: session.access_token, language: 'de' });
    expect(me.headers['content-language']).toBe('fr');
    const refused = await inject('GET', 'la/roles', { token: session.access_token, language: 'de' });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['content-language']).toBe('fr');
    expect(refused.json()).toMatchObject({ title: say('fr', 'title.forbidden'), detail: say('fr', 'detail.permission_missing', { permission: 'roles.read' }) });
    // A locale the service does not speak falls through to the header.
    expect((await inject('PUT', 'la/me', { token: session.access_token, payload: { locale: 'ja-JP' } })).statusCode).toBe(200);
    expect((await inject('GET', 'la/roles', { token: session.access_token, language: 'es' })).json().title).toBe(say('es', 'title.forbidden'));
    const bad = await inject('PUT', 'la/me', { token: session.access_token, payload: { locale: 'not a tag!' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toEqual([{ field: 'locale', reason: say('en', 'reason.locale') }]);
  });

  it('falls back to the tenant default, which is per tenant', async () => {
    expect((await inject('PUT', 'lb/settings/locale.default', { token: t.tokens.lb, payload: { value: 'es' } })).statusCode).toBe(200);
    const b = await inject('POST', 'lb/auth/login', { payload: { email: 'nobody@lb.example', password: 'wrong password here' } });
    expect(b.statusCode).toBe(401);
    expect(b.headers['content-language']).toBe('es');
    expect(b.json()).toMatchObject({ code: 'auth.invalid_credentials', title: say('es', 'title.unauthenticated'), detail: say('es', 'error.auth.invalid_credentials') });
    const a = await inject('POST', 'la/auth/login', { payload: { email: 'nobody@la.example', password: 'wrong password here' } });
    expect(a.headers['content-language']).toBe('en');
    expect(a.json().detail).toBe('invalid credentials');
    // The header beats the tenant default.
    expect((await inject('POST', 'lb/auth/login', { language: 'de', payload: { email: 'nobody@lb.example', password: 'wrong password here' } })).headers['content-language']).toBe('de');
    // Mail to a user without a locale follows the tenant default too; audit rows stay untranslated.
    const user = await seedUser(t, 'lb', { email: 'sin-idioma@lb.example', roles: ['user'] });
    expect((await inject('POST', 'lb/auth/password-reset/request', { payload: { email: user.email } })).statusCode).toBe(202);
    await t.services.auth.settled();
    const mail = t.mailer.sent.filter((m) => m.to === user.email).at(-1)!;
    expect(mail.subject).toBe(say('es', 'mail.reset.subject'));
    const audit = await inject('GET', 'lb/audit-logs?action=auth.password_reset_requested', { token: t.tokens.lb, language: 'es' });
    expect(audit.json().items[0]).toMatchObject({ action: 'auth.password_reset_requested' });
    expect((await inject('PUT', 'lb/settings/locale.default', { token: t.tokens.lb, payload: { value: 'en' } })).statusCode).toBe(200);
  });

  it('puts Content-Language on every answer, platform routes and successes included', async () => {
    const health = await t.app.inject({ method: 'GET', url: '/health', headers: { 'accept-language': 'fr' } });
    expect(health.headers['content-language']).toBe('fr');
    const users = await inject('GET', 'la/users', { token: t.tokens.la });
    expect(users.statusCode).toBe(200);
    expect(users.headers['content-language']).toBe('en');
    const missing = await t.app.inject({ method: 'GET', url: '/api/v1/nowhere', headers: { 'accept-language': 'de' } });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-language']).toBe('de');
    expect(missing.json().detail).toBe(say('de', 'detail.no_route', { method: 'GET', path: '/api/v1/nowhere' }));
  });

  it('lists the locales, and the OpenAPI document states both headers', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/locales' });
    expect(res.json()).toEqual({ default: 'en', locales: ['en', 'de', 'es', 'fr'] });
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const get = doc.paths['/api/v1/tenants/{tenant_slug}/users/{user_id}'].get;
    expect(get.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'accept-language' }));
    expect(get.responses['200'].headers['content-language']).toBeDefined();
  });
});

describe('mails in German, each kind', () => {
  it('reset, verification, invitation and email-change notice come out in the reader\'s language and zone', async () => {
    const user = await seedUser(t, 'la', { email: 'dora@la.example', roles: ['user'] });
    expect((await inject('PATCH', `la/users/${user.id}`, { token: t.tokens.la, payload: { locale: 'de-AT', timezone: 'Europe/Vienna' } })).statusCode).toBe(200);
    expect((await inject('POST', 'la/auth/password-reset/request', { payload: { email: user.email } })).statusCode).toBe(202);
    await t.services.auth.settled();
    const reset = t.mailer.sent.filter((m) => m.to === user.email).at(-1)!;
    expect(reset.subject).toBe(say('de', 'mail.reset.subject'));
    expect(reset.text).toContain(say('de', 'mail.reset.action'));
    expect(reset.text).toMatch(/MEZ|MESZ|GMT\+1|GMT\+2/);

    expect((await inject('PATCH', `la/users/${user.id}`, { token: t.tokens.la, payload: { email: 'dora-neu@la.example' } })).statusCode).toBe(200);
    const notice = t.mailer.sent.filter((m) => m.to === 'dora@la.example').at(-1)!;
    expect(notice.subject).toBe(say('de', 'mail.email_changed.subject'));
    expect(notice.text).toContain(say('de', 'mail.email_changed.warning'));
    expect(notice.text).toContain('dora-neu@la.example');
    const verification = t.mailer.sent.filter((m) => m.to === 'dora-neu@la.example').at(-1)!;
    expect(verification.subject).toBe(say('de', 'mail.verify.subject'));
    expect(verification.html).toMatch(/<a href="https?:\/\/[^"]+verify-email\?tenant=la&amp;token=/);
    // The date in a mail is the reader's, formatted as their language writes it.
    expect(readerDate({ locale: 'de', timeZone: 'Europe/Vienna' }, new Date('2026-07-01T10:00:00Z'))).toMatch(/1\. Juli 2026.*12:00/);
  });
});
