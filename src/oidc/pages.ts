import { page, type RenderedPage } from '../account/page.js';
import { escapeHtml } from '../html.js';
import { render, text, type Locale, type MessageKey, type Params } from '../i18n/index.js';
import type { Branding } from '../settings/policy.js';

/** Who an OpenID page is shown to: the reader's language, the tenant's name and branding, and the application asking. */
export interface OidcPageView {
  readonly locale: Locale;
  readonly product: string;
  readonly branding: Branding | null;
  /** The client's name (its id when it has none); empty when no client is known. */
  readonly client: string;
}

/** The scopes the consent page explains, in the order it lists them. */
export const EXPLAINED_SCOPES = ['openid', 'profile', 'email', 'roles', 'offline_access'] as const;

const words = (view: OidcPageView, key: MessageKey, params?: Params) => render(view.locale, text(key, { product: view.product, client: view.client, ...params }));
const say = (view: OidcPageView, key: MessageKey, params?: Params) => escapeHtml(words(view, key, params));
const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;

/** A refusal above a form: its translated title and detail. */
export interface Refusal {
  readonly title: string;
  readonly detail: string;
}

const alert = (refusal: Refusal | undefined) =>
  refusal ? `<div class="alert" role="alert"><p><strong>${escapeHtml(refusal.title)}</strong></p><p>${escapeHtml(refusal.detail)}</p></div>\n` : '';

/** The sign-in form: email and password, posted to `action`. */
export function loginPage(view: OidcPageView, form: { readonly action: string; readonly email: string; readonly refusal?: Refusal }): RenderedPage {
  const invalid = form.refusal ? ' aria-invalid="true" aria-describedby="refusal"' : '';
  const body = [
    alert(form.refusal).replace('<div class="alert"', '<div id="refusal" class="alert"') + `<p>${say(view, 'page.oidc.login.intro')}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    `<label for="email">${say(view, 'page.oidc.email')}</label>`,
    `<input id="email" name="email" type="email" autocomplete="username" required maxlength="320" value="${escapeHtml(form.email)}"${invalid}>`,
    `<label for="password">${say(view, 'page.oidc.password')}</label>`,
    `<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${invalid}>`,
    `<button type="submit">${say(view, 'page.oidc.login.submit')}</button>`,
    '</form>',
  ].join('\n');
  return page(view, words(view, 'page.oidc.login.title'), body);
}

/** The second step of a sign-in: a code of the authenticator app (or a recovery code), posted with the login's `mfa_token` to `action`. */
export function mfaPage(view: OidcPageView, form: { readonly action: string; readonly mfaToken: string; readonly refusal?: Refusal }): RenderedPage {
  const invalid = form.refusal ? ' aria-invalid="true" aria-describedby="refusal"' : '';
  const body = [
    alert(form.refusal).replace('<div class="alert"', '<div id="refusal" class="alert"') + `<p>${say(view, 'page.oidc.mfa.code_intro')}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    hidden('mfa_token', form.mfaToken),
    `<label for="code">${say(view, 'page.oidc.mfa.code')}</label>`,
    `<input id="code" name="code" type="text" inputmode="text" autocomplete="one-time-code" required maxlength="64" autofocus${invalid}>`,
    `<button type="submit">${say(view, 'page.oidc.mfa.submit')}</button>`,
    '</form>',
  ].join('\n');
  return page(view, words(view, 'page.oidc.mfa.title'), body);
}

/** The tenant asks every account for a second factor and this one has none yet: it is set up elsewhere, these pages only check one. */
export function mfaRequiredPage(view: OidcPageView): RenderedPage {
  return page(view, words(view, 'page.oidc.mfa.title'), `<div class="alert" role="alert"><p>${say(view, 'page.oidc.mfa.intro')}</p></div>`);
}

/** What the application asks for, and two buttons: allow (posted to `allow`) or deny (to `deny`). */
export function consentPage(view: OidcPageView, form: { readonly allow: string; readonly deny: string; readonly scopes: readonly string[] }): RenderedPage {
  const explained = EXPLAINED_SCOPES.filter((s) => form.scopes.includes(s));
  const body = [
    `<p>${say(view, 'page.oidc.consent.intro')}</p>`,
    `<ul class="scopes">${explained.map((s) => `<li>${say(view, `page.oidc.scope.${s}`)}</li>`).join('')}</ul>`,
    `<form method="post" action="${escapeHtml(form.allow)}"><button type="submit">${say(view, 'page.oidc.consent.allow')}</button></form>`,
    `<form method="post" action="${escapeHtml(form.deny)}"><button type="submit" class="secondary">${say(view, 'page.oidc.consent.deny')}</button></form>`,
  ].join('\n');
  return page(view, words(view, 'page.oidc.consent.title'), body);
}

/** The end-session confirmation: sign out (`logout=yes`) or stay, posted with the provider's xsrf value. */
export function logoutPage(view: OidcPageView, form: { readonly action: string; readonly xsrf: string }): RenderedPage {
  const body = [
    `<p>${say(view, 'page.oidc.logout.intro')}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    hidden('xsrf', form.xsrf),
    `<button type="submit" name="logout" value="yes">${say(view, 'page.oidc.logout.submit')}</button>`,
    `<button type="submit" class="secondary">${say(view, 'page.oidc.logout.stay')}</button>`,
    '</form>',
  ].join('\n');
  return page(view, words(view, 'page.oidc.logout.title'), body);
}

export function loggedOutPage(view: OidcPageView): RenderedPage {
  return page(view, words(view, 'page.oidc.logged_out.title'), `<div class="alert done" role="status"><p>${say(view, 'page.oidc.logged_out.intro')}</p></div>`);
}

/** A request the provider cannot answer with a redirect (unknown client, wrong redirect URI): the OAuth error as sent, and what to do. */
export function oauthErrorPage(view: OidcPageView, out: { readonly error?: unknown; readonly error_description?: unknown }): RenderedPage {
  const code = typeof out.error === 'string' ? out.error : 'server_error';
  const description = typeof out.error_description === 'string' ? out.error_description : '';
  const body = [
    `<div class="alert" role="alert"><p>${say(view, 'page.oidc.error.intro')}</p></div>`,
    `<p><code>${escapeHtml(code)}</code>${description ? `: ${escapeHtml(description)}` : ''}</p>`,
  ].join('\n');
  return page(view, words(view, 'page.oidc.error.title'), body);
}

/** A refusal with no form: the problem's translated title and detail. */
export function problemPage(view: OidcPageView, problem: Refusal): RenderedPage {
  const detail = problem.detail.charAt(0).toLocaleUpperCase(view.locale) + problem.detail.slice(1);
  return page(view, problem.title, `<div class="alert" role="alert"><p>${escapeHtml(detail)}</p></div>`);
}
