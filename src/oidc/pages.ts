import { page, type RenderedPage } from '../account/page.js';
import { escapeHtml } from '../html.js';
import { render, text, type Locale, type MessageKey, type Params } from '../i18n/index.js';
import type { Branding, MfaMode } from '../settings/policy.js';

/** Who an OpenID page is shown to: the reader's language, the tenant's name and branding, and the application asking. */
export interface OidcPageView {
  readonly locale: Locale;
  readonly product: string;
  readonly branding: Branding | null;
  /** The client's name (its id when it has none); empty when no client is known. */
  readonly client: string;
  /** The tenant's `auth.mfa`: passkeys are offered unless it is `off`. */
  readonly mfa: MfaMode;
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

/**
 * The passkey ceremonies of these pages, with no library: a button `data-passkey="get|create"`
 * asks the public API at `data-options` for WebAuthn options (with its form's `mfa_token`,
 * if any), runs the browser's ceremony, and posts its JSON in the form's `webauthn` or
 * `passkey` field. Browsers without WebAuthn's JSON methods never see the button.
 */
const PASSKEY_SCRIPT = `(() => {
  const json = typeof PublicKeyCredential !== 'undefined' && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function' && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function';
  const button = document.querySelector('button[data-passkey]');
  if (!json || !button) return;
  const form = document.getElementById('passkey-form');
  const status = document.getElementById('passkey-status');
  button.hidden = false;
  button.addEventListener('click', async () => {
    const create = button.dataset.passkey === 'create';
    button.disabled = true;
    status.textContent = '';
    try {
      const token = form.elements.mfa_token;
      const res = await fetch(button.dataset.options, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(token ? { mfa_token: token.value } : {}), credentials: 'omit' });
      const options = await res.json();
      if (!res.ok) throw new Error(options.detail || options.title || '');
      const credential = create
        ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
        : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      form.elements[create ? 'passkey' : 'webauthn'].value = JSON.stringify(credential.toJSON());
      form.submit();
    } catch (error) {
      status.textContent = (error instanceof Error && error.name === 'Error' && error.message) || button.dataset.failed;
      button.disabled = false;
    }
  });
})();`;

/** A passkey button of a page: where its options come from, the hidden form its answer is posted in, and its words. */
export interface PasskeyOffer {
  /** The public API route that gives the WebAuthn options (auth/passkey/options, auth/mfa/passkey-options, auth/mfa/passkeys/registration-options). */
  readonly options: string;
  /** Where the hidden form posts the ceremony's JSON. */
  readonly action: string;
}

/** The hidden form and the button (shown by the script where the browser can) of a passkey offer. */
function passkeyParts(view: OidcPageView, offer: PasskeyOffer, kind: 'get' | 'create', label: MessageKey, fields: Record<string, string>): string {
  return [
    `<form id="passkey-form" method="post" action="${escapeHtml(offer.action)}" hidden>`,
    ...Object.entries(fields).map(([name, value]) => hidden(name, value)),
    hidden(kind === 'create' ? 'passkey' : 'webauthn', ''),
    '</form>',
    `<button type="button" class="secondary" data-passkey="${kind}" data-options="${escapeHtml(offer.options)}" data-failed="${say(view, 'page.oidc.passkey.failed')}" hidden>${say(view, label)}</button>`,
    '<p id="passkey-status" class="error" role="status" aria-live="polite"></p>',
  ].join('\n');
}

const refusalAlert = (refusal: Refusal | undefined) => alert(refusal).replace('<div class="alert"', '<div id="refusal" class="alert"');
const invalidWhen = (refusal: Refusal | undefined) => (refusal ? ' aria-invalid="true" aria-describedby="refusal"' : '');

/** The sign-in form: email and password, posted to `action`; and a passwordless passkey where the tenant has passkeys on. */
export function loginPage(view: OidcPageView, form: { readonly action: string; readonly email: string; readonly refusal?: Refusal; readonly passkey?: PasskeyOffer }): RenderedPage {
  const invalid = invalidWhen(form.refusal);
  const body = [
    refusalAlert(form.refusal) + `<p>${say(view, 'page.oidc.login.intro')}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    `<label for="email">${say(view, 'page.oidc.email')}</label>`,
    `<input id="email" name="email" type="email" autocomplete="username" required maxlength="320" value="${escapeHtml(form.email)}"${invalid}>`,
    `<label for="password">${say(view, 'page.oidc.password')}</label>`,
    `<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${invalid}>`,
    `<button type="submit">${say(view, 'page.oidc.login.submit')}</button>`,
    '</form>',
    ...(form.passkey ? [passkeyParts(view, form.passkey, 'get', 'page.oidc.passkey.sign_in', {})] : []),
  ].join('\n');
  return page(view, words(view, 'page.oidc.login.title'), body, form.passkey ? PASSKEY_SCRIPT : undefined);
}

/**
 * The second step of a sign-in: a code of the authenticator app (or a recovery code), posted
 * with the login's `mfa_token` to `action`; or, for a user with a passkey, its assertion.
 */
export function mfaPage(
  view: OidcPageView,
  form: { readonly action: string; readonly mfaToken: string; readonly methods: readonly string[]; readonly refusal?: Refusal; readonly passkey?: PasskeyOffer },
): RenderedPage {
  const invalid = invalidWhen(form.refusal);
  // The user's methods go round with the forms: a refusal's page offers the same ways again.
  const methods = form.methods.join(',');
  const body = [
    refusalAlert(form.refusal) + `<p>${say(view, 'page.oidc.mfa.code_intro')}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    hidden('mfa_token', form.mfaToken),
    hidden('methods', methods),
    `<label for="code">${say(view, 'page.oidc.mfa.code')}</label>`,
    `<input id="code" name="code" type="text" inputmode="text" autocomplete="one-time-code" required maxlength="64" autofocus${invalid}>`,
    `<button type="submit">${say(view, 'page.oidc.mfa.submit')}</button>`,
    '</form>',
    ...(form.passkey ? [passkeyParts(view, form.passkey, 'get', 'page.oidc.passkey.use', { mfa_token: form.mfaToken, methods })] : []),
  ].join('\n');
  return page(view, words(view, 'page.oidc.mfa.title'), body, form.passkey ? PASSKEY_SCRIPT : undefined);
}

/** A TOTP secret being set up: the key to type into an app, and its otpauth URI. */
export interface TotpSecret {
  readonly secret: string;
  readonly otpauthUrl: string;
}

/**
 * Forced enrolment (`auth.mfa = required`, no factor yet): the new TOTP key and its first code,
 * posted with the `mfa_token` to `action`; or a new passkey instead.
 */
export function enrolPage(view: OidcPageView, form: { readonly action: string; readonly mfaToken: string; readonly totp: TotpSecret; readonly refusal?: Refusal; readonly passkey: PasskeyOffer }): RenderedPage {
  const invalid = invalidWhen(form.refusal);
  const body = [
    refusalAlert(form.refusal) + `<p>${say(view, 'page.oidc.enrol.intro')}</p>`,
    `<p>${say(view, 'page.oidc.enrol.secret')} <code id="secret">${escapeHtml(form.totp.secret)}</code></p>`,
    `<p><a href="${escapeHtml(form.totp.otpauthUrl)}">${say(view, 'page.oidc.enrol.open_app')}</a></p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    hidden('mfa_token', form.mfaToken),
    `<label for="code">${say(view, 'page.oidc.mfa.code')}</label>`,
    `<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="64" autofocus${invalid}>`,
    `<button type="submit">${say(view, 'page.oidc.enrol.submit')}</button>`,
    '</form>',
    passkeyParts(view, form.passkey, 'create', 'page.oidc.passkey.create', { mfa_token: form.mfaToken }),
  ].join('\n');
  return page(view, words(view, 'page.oidc.enrol.title'), body, PASSKEY_SCRIPT);
}

/** After a forced enrolment: the ten recovery codes, shown this once, and the way on to the application. */
export function recoveryCodesPage(view: OidcPageView, codes: readonly string[], next: string): RenderedPage {
  const body = [
    `<div class="alert done" role="status"><p>${say(view, 'page.oidc.recovery.intro')}</p></div>`,
    `<ul class="codes">${codes.map((c) => `<li><code>${escapeHtml(c)}</code></li>`).join('')}</ul>`,
    `<a class="button" href="${escapeHtml(next)}">${say(view, 'page.oidc.recovery.continue')}</a>`,
  ].join('\n');
  return page(view, words(view, 'page.oidc.recovery.title'), body);
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
