import { createHash } from 'node:crypto';
import { escapeHtml } from '../html.js';
import { LOCALES, render, text, type Locale, type MessageKey, type Params } from '../i18n/index.js';
import type { Branding } from '../settings/policy.js';

/** The three account pages: what each says is under `page.<kind>.*` in the catalogues. */
export type PageKind = 'reset' | 'invite' | 'verify';

/** Who a page is shown to and for whom: the reader's language, the tenant's name and branding (unknown when the tenant is). */
export interface PageView {
  readonly kind: PageKind;
  readonly locale: Locale;
  readonly product: string | null;
  readonly branding: Branding | null;
}

/** A page and the Content-Security-Policy that lets exactly its own stylesheet (and logo) load. */
export interface RenderedPage {
  readonly html: string;
  readonly csp: string;
}

/** The form's fields a refusal can name; any other field means the link, not what was typed. */
export const FORM_FIELDS = ['new_password', 'new_password_repeat'] as const;
export type FormField = (typeof FORM_FIELDS)[number];

export interface FormState {
  /** The form's action: the page's own path, relative (the service may sit under a path prefix). */
  readonly action: string;
  readonly tenant: string;
  readonly token: string;
  /** `?lang=` as the reader picked it, carried to the post. */
  readonly lang: string | undefined;
  /** Password pages: the tenant's length rule, for the hint and the browser's own check. */
  readonly password: { readonly minLength: number; readonly maxLength: number } | null;
  /** A refusal: its translated title and each field's translated reasons. */
  readonly refusal?: { readonly title: string; readonly fields: ReadonlyMap<FormField, string> };
}

const STYLE = `*{box-sizing:border-box}
body{margin:0;padding:24px 16px;background:#f5f5f7;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;line-height:1.5}
main{max-width:440px;margin:0 auto;background:#fff;border-radius:8px;padding:32px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
header{display:flex;align-items:center;gap:12px;margin:0 0 16px}
header img{max-height:40px;max-width:160px}
.product{margin:0;font-weight:600}
h1{font-size:1.375rem;line-height:1.3;margin:0 0 12px}
label{display:block;font-weight:600;margin:16px 0 4px}
input{width:100%;padding:10px 12px;font:inherit;border:1px solid #8e8e93;border-radius:6px}
input:focus{outline:3px solid var(--brand);outline-offset:1px}
input[aria-invalid=true]{border-color:#b3261e}
.hint,.error{margin:4px 0 0;font-size:.875rem;color:#555}
.error{color:#b3261e}
.alert{border:1px solid #b3261e;background:#fdecea;color:#5f1412;border-radius:6px;padding:12px 16px;margin:0 0 16px}
.alert p{margin:0}
.alert.done{border-color:#1e7b34;background:#e8f5e9;color:#0f3d1a}
button{margin-top:24px;width:100%;padding:12px 20px;font:inherit;font-weight:600;color:#fff;background:var(--brand);border:0;border-radius:6px;cursor:pointer}
button.secondary{margin-top:12px;color:#1d1d1f;background:#fff;border:1px solid #8e8e93}
ul.scopes{margin:8px 0 0;padding-left:20px}
ul.codes{columns:2;margin:8px 0 0;padding-left:20px;font-family:ui-monospace,monospace}
code{font-family:ui-monospace,monospace;word-break:break-all}
a.button{display:block;margin-top:24px;padding:12px 20px;text-align:center;font-weight:600;color:#fff;background:var(--brand);border-radius:6px;text-decoration:none}
button:focus-visible,a:focus-visible{outline:3px solid #1d1d1f;outline-offset:2px}
nav ul{list-style:none;padding:0;margin:24px 0 0;display:flex;gap:12px;flex-wrap:wrap;font-size:.875rem}
nav a{color:inherit}
nav a[aria-current]{font-weight:600;text-decoration:none}`;

const DEFAULT_BRAND = '#0b57d0';

/** A language's own name for itself (`Deutsch`, `français`). */
const nativeName = (locale: Locale) => new Intl.DisplayNames([locale], { type: 'language' }).of(locale) ?? locale;

/**
 * The whole document around `body`; its stylesheet is allowed by hash, nothing else may run or
 * load. The OpenID provider's pages (src/oidc/pages.ts) are built on it too.
 */
export function page(view: Pick<PageView, 'locale' | 'product' | 'branding'>, title: string, body: string, script?: string): RenderedPage {
  const style = `:root{--brand:${view.branding?.primaryColor ?? DEFAULT_BRAND}}\n${STYLE}`;
  const hash = (source: string) => createHash('sha256').update(source).digest('base64');
  const logo = view.branding?.logoUrl ?? null;
  // A page's own script (the passkey ceremonies) is allowed by hash too, and may call this origin's API.
  const scripted = script === undefined ? [] : [`script-src 'sha256-${hash(script)}'`, `connect-src 'self'`];
  const csp = [`default-src 'none'`, `style-src 'sha256-${hash(style)}'`, ...scripted, ...(logo ? [`img-src ${new URL(logo).origin}`] : []), `form-action 'self'`, `frame-ancestors 'none'`, `base-uri 'none'`].join('; ');
  const product = view.product === null ? '' : escapeHtml(view.product);
  const header = view.product === null ? '' : `<header>${logo ? `<img src="${escapeHtml(logo)}" alt="">` : ''}<p class="product">${product}</p></header>\n`;
  const html = `<!doctype html>
<html lang="${view.locale}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}${product ? ` – ${product}` : ''}</title>
<style>${style}</style>
</head>
<body>
<main>
${header}<h1>${escapeHtml(title)}</h1>
${body}
</main>${script === undefined ? '' : `\n<script>${script}</script>`}
</body>
</html>
`;
  return { html, csp };
}

/** A message in the reader's language, as plain text; `say` is the same as HTML. */
const words = (view: PageView, key: MessageKey, params?: Params) => render(view.locale, text(key, { product: view.product ?? '', ...params }));
const say = (view: PageView, key: MessageKey, params?: Params) => escapeHtml(words(view, key, params));

const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;

/** One password input with its label, hint and error, tied together for screen readers. */
function passwordInput(view: PageView, field: FormField, label: MessageKey, rule: { minLength: number; maxLength: number }, hint: string | null, error: string | undefined): string {
  const described = [hint === null ? '' : `${field}-hint`, error === undefined ? '' : `${field}-error`].filter(Boolean).join(' ');
  return [
    `<label for="${field}">${say(view, label)}</label>`,
    `<input id="${field}" name="${field}" type="password" autocomplete="new-password" required minlength="${rule.minLength}" maxlength="${rule.maxLength}"${described ? ` aria-describedby="${described}"` : ''}${error === undefined ? '' : ' aria-invalid="true"'}>`,
    ...(hint === null ? [] : [`<p id="${field}-hint" class="hint">${hint}</p>`]),
    ...(error === undefined ? [] : [`<p id="${field}-error" class="error">${escapeHtml(error)}</p>`]),
  ].join('\n');
}

/** The links that show the same page in each language the service speaks. */
function languages(view: PageView, form: FormState): string {
  const links = LOCALES.map((locale) => {
    const query = new URLSearchParams({ tenant: form.tenant, token: form.token, lang: locale });
    const current = locale === view.locale ? ' aria-current="true"' : '';
    return `<li><a href="?${escapeHtml(query.toString())}" lang="${locale}" hreflang="${locale}"${current}>${escapeHtml(nativeName(locale))}</a></li>`;
  });
  return `<nav aria-label="${say(view, 'page.languages')}"><ul>${links.join('')}</ul></nav>`;
}

/** The page's form: a new password (twice) for a reset or an invitation, one button for a verification. */
export function formPage(view: PageView, form: FormState): RenderedPage {
  const fields = form.refusal?.fields ?? new Map<FormField, string>();
  const labels: Record<FormField, MessageKey> = { new_password: 'page.password', new_password_repeat: 'page.password_repeat' };
  const alert = form.refusal
    ? `<div class="alert" role="alert"><p><strong>${escapeHtml(form.refusal.title)}</strong></p>${[...fields].map(([field, reason]) => `<p>${say(view, 'problem.field_reason', { field: words(view, labels[field]), reason })}</p>`).join('')}</div>\n`
    : '';
  const rule = form.password;
  const inputs = rule
    ? [
        passwordInput(view, 'new_password', labels.new_password, rule, say(view, 'page.password_hint', { min: rule.minLength }), fields.get('new_password')),
        passwordInput(view, 'new_password_repeat', labels.new_password_repeat, rule, null, fields.get('new_password_repeat')),
      ]
    : [];
  const body = [
    alert + `<p>${say(view, `page.${view.kind}.intro`)}</p>`,
    `<form method="post" action="${escapeHtml(form.action)}">`,
    hidden('tenant', form.tenant),
    hidden('token', form.token),
    ...(form.lang === undefined ? [] : [hidden('lang', form.lang)]),
    ...inputs,
    `<button type="submit">${say(view, `page.${view.kind}.submit`)}</button>`,
    '</form>',
    languages(view, form),
  ].join('\n');
  return page(view, words(view, `page.${view.kind}.title`), body);
}

/** What the page did. */
export function donePage(view: PageView): RenderedPage {
  return page(view, words(view, `page.${view.kind}.title`), `<div class="alert done" role="status"><p>${say(view, `page.${view.kind}.done`)}</p></div>`);
}

/**
 * A refusal that leaves no form to fill in: a link that cannot be used (unknown tenant,
 * missing, used or expired token) says so and what to do; anything else shows the problem's
 * translated title and detail.
 */
export function errorPage(view: PageView, problem: { readonly title: string; readonly detail: string; readonly linkInvalid: boolean }): RenderedPage {
  // Details are written to follow a title ("the link is invalid"): on a page, one starts a sentence.
  const detail = problem.detail.charAt(0).toLocaleUpperCase(view.locale) + problem.detail.slice(1);
  if (!problem.linkInvalid) return page(view, problem.title, `<div class="alert" role="alert"><p>${escapeHtml(detail)}</p></div>`);
  const body = `<div class="alert" role="alert"><p>${say(view, 'page.link_invalid.intro')}</p></div>\n<p>${say(view, `page.${view.kind}.link_invalid`)}</p>`;
  return page(view, words(view, 'page.link_invalid.title'), body);
}
