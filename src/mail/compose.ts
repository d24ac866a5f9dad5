import { render, supportedLocale, text, type Locale, type MessageKey, type Params } from '../i18n/index.js';
import { validTimeZone } from '../i18n/zones.js';
import { escapeHtml } from '../html.js';
import type { MailMessage } from './mailer.js';

/** Whom a mail is written for: the language and the time zone its dates are shown in. */
export interface MailReader {
  readonly locale: Locale;
  readonly timeZone: string;
}

/** The reader of a user's mail: their own locale and zone, else the tenant's defaults (§15). */
export function mailReader(user: { readonly locale?: string | null; readonly timezone?: string | null }, defaults: { readonly defaultLocale: string; readonly defaultTimezone: string }): MailReader {
  const locale = supportedLocale(user.locale) ?? supportedLocale(defaults.defaultLocale) ?? 'en';
  const timeZone = [user.timezone, defaults.defaultTimezone].find((zone) => zone && validTimeZone(zone)) ?? 'UTC';
  return { locale, timeZone };
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** A date and time as the reader reads them: their language's order and words, their zone, the zone named. */
export function readerDate(reader: MailReader, date: Date): string {
  // A formatter is costly to build: one per language and zone.
  const id = `${reader.locale} ${reader.timeZone}`;
  let format = dateFormats.get(id);
  if (!format) {
    format = new Intl.DateTimeFormat(reader.locale, { year: 'numeric', month: 'long', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZone: reader.timeZone, timeZoneName: 'short' });
    if (dateFormats.size > 1000) dateFormats.clear();
    dateFormats.set(id, format);
  }
  return format.format(date);
}

/** One mail in the reader's language: paragraphs, an optional action link (a button in HTML), and the tenant's signature. */
function mail(reader: MailReader, to: string, parts: { subject: MessageKey; paragraphs: readonly [MessageKey, Params?][]; action?: { label: MessageKey; link: string }; after?: readonly [MessageKey, Params?][]; product: string; params: Params }): MailMessage {
  const say = (key: MessageKey, params?: Params) => render(reader.locale, text(key, { ...parts.params, ...params }));
  const before = parts.paragraphs.map(([key, params]) => say(key, params));
  const after = (parts.after ?? []).map(([key, params]) => say(key, params));
  const greeting = say('mail.greeting');
  const signature = say('mail.signature', { product: parts.product });
  const action = parts.action && { label: say(parts.action.label), link: parts.action.link };
  const textBody = [greeting, ...before, ...(action ? [`${action.label}: ${action.link}`] : []), ...after, signature].join('\n\n') + '\n';
  const p = (s: string) => `<p style="margin:0 0 16px">${escapeHtml(s)}</p>`;
  const html = [
    `<!doctype html><html lang="${reader.locale}"><head><meta charset="utf-8"><title>${escapeHtml(say(parts.subject))}</title></head>`,
    '<body style="margin:0;padding:24px;background:#f5f5f7;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d1d1f">',
    '<div style="max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:32px">',
    p(greeting),
    ...before.map(p),
    ...(action
      ? [
          `<p style="margin:24px 0"><a href="${escapeHtml(action.link)}" style="display:inline-block;padding:12px 20px;background:#0b57d0;color:#fff;border-radius:6px;text-decoration:none">${escapeHtml(action.label)}</a></p>`,
          `<p style="margin:0 0 16px;font-size:13px;color:#555">${escapeHtml(say('mail.link_fallback'))}<br><a href="${escapeHtml(action.link)}">${escapeHtml(action.link)}</a></p>`,
        ]
      : []),
    ...after.map(p),
    p(signature),
    '</div></body></html>',
  ].join('\n');
  return { to, subject: say(parts.subject), text: textBody, html, language: reader.locale };
}

/** The mails that carry a one-time link: a password reset, an address verification, an invitation. */
export function linkMail(
  kind: 'reset' | 'verify' | 'invite',
  reader: MailReader,
  to: string,
  values: { readonly product: string; readonly link: string; readonly expiresAt: Date; readonly ttl: number },
): MailMessage {
  const expires = readerDate(reader, values.expiresAt);
  const ttl: Params = kind === 'reset' ? { minutes: values.ttl } : { hours: values.ttl };
  return mail(reader, to, {
    subject: `mail.${kind}.subject`,
    paragraphs: [[`mail.${kind}.intro`]],
    action: { label: `mail.${kind}.action`, link: values.link },
    after: [[`mail.${kind}.validity`, { ...ttl, expires }]],
    product: values.product,
    params: { product: values.product },
  });
}

/** The notice to the old address after an email change. */
export function emailChangedMail(reader: MailReader, to: string, values: { readonly product: string; readonly oldEmail: string; readonly newEmail: string; readonly changedAt: Date }): MailMessage {
  return mail(reader, to, {
    subject: 'mail.email_changed.subject',
    paragraphs: [['mail.email_changed.intro', { old: values.oldEmail, new: values.newEmail, changed: readerDate(reader, values.changedAt) }], ['mail.email_changed.warning']],
    product: values.product,
    params: { product: values.product },
  });
}
