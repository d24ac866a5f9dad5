import { IntlMessageFormat } from 'intl-messageformat';
import type { ErrorCode, ErrorKind } from '../error-codes.js';
import type en from './locales/en.js';
import * as catalogues from './locales/index.js';

export type MessageKey = keyof typeof en;
/** A locale's catalogue: every key of the English one, in ICU message format. */
export type Catalogue = { readonly [K in MessageKey]: string };

/** The supported locales and their catalogues: adding one is a file in locales/ and a line in locales/index.ts (docs/I18N.md). */
const CATALOGUES: Readonly<Record<string, Catalogue>> = catalogues;

export type Locale = string;
export const DEFAULT_LOCALE: Locale = 'en';
/** The default first, then the others by name. */
export const LOCALES: readonly Locale[] = [DEFAULT_LOCALE, ...Object.keys(CATALOGUES).filter((l) => l !== DEFAULT_LOCALE).sort()];

// Every error code and every kind has its message (a compile-time check).
type Missing = Exclude<`error.${ErrorCode}` | `title.${ErrorKind}`, MessageKey>;
const everyCodeHasAMessage: [Missing] extends [never] ? true : Missing = true;
void everyCodeHasAMessage;

export type Params = Readonly<Record<string, string | number>>;

/** A message not yet rendered: its key and values, turned into words once the reader's locale is known. */
export interface Text {
  readonly key: MessageKey;
  readonly params?: Params;
}

export const text = (key: MessageKey, params?: Params): Text => (params ? { key, params } : { key });

const formats = new Map<string, IntlMessageFormat>();

/** The message in `locale` (English for an unknown one). Formats are compiled once per locale and key. */
export function render(locale: Locale, message: Text): string {
  try {
    return format(locale, message);
  } catch {
    // A value missing or of the wrong kind must not turn a refusal into a 500: English, else the key.
    try {
      return format(DEFAULT_LOCALE, message);
    } catch {
      return message.key;
    }
  }
}

function format(locale: Locale, message: Text): string {
  const catalogue = CATALOGUES[locale] ?? CATALOGUES[DEFAULT_LOCALE]!;
  const id = `${locale}\u0000${message.key}`;
  let compiled = formats.get(id);
  if (!compiled) {
    // ignoreTag: messages quote things like "<resource>.*", never markup.
    compiled = new IntlMessageFormat(catalogue[message.key], locale, undefined, { ignoreTag: true });
    formats.set(id, compiled);
  }
  return String(compiled.format(message.params as Record<string, string | number> | undefined));
}

export const english = (message: Text): string => render(DEFAULT_LOCALE, message);

/** The raw ICU source of a key in a locale (tests compare placeholders across locales). */
export function source(locale: Locale, key: MessageKey): string | undefined {
  return CATALOGUES[locale]?.[key];
}

const supported = new Map<string, Locale | null>();

/** The supported locale a BCP 47 tag names: itself, else its language (`de-CH` → `de`); undefined for none. Remembered per tag. */
export function supportedLocale(tag: string | null | undefined): Locale | undefined {
  if (!tag) return undefined;
  const known = supported.get(tag);
  if (known !== undefined) return known ?? undefined;
  const lower = tag.trim().toLowerCase();
  const language = lower.split(/[-_]/)[0]!;
  const locale = lower in CATALOGUES ? lower : language in CATALOGUES ? language : null;
  if (supported.size > 1000) supported.clear();
  supported.set(tag, locale);
  return locale ?? undefined;
}

const accepted = new Map<string, Locale | null>();

/**
 * The best supported match of an Accept-Language header (RFC 9110: quality values, `q=0` refuses,
 * a language range matches its sub-tags), or undefined. Answers are remembered per header value.
 */
export function fromAcceptLanguage(header: string | undefined): Locale | undefined {
  if (!header) return undefined;
  const known = accepted.get(header);
  if (known !== undefined) return known ?? undefined;
  let best: { locale: Locale; q: number } | undefined;
  for (const part of header.slice(0, 1000).split(',')) {
    const [range, ...options] = part.trim().split(';');
    const qOption = options.map((o) => o.trim()).find((o) => /^q=/i.test(o));
    const q = qOption === undefined ? 1 : Number(qOption.slice(2));
    if (!range || !Number.isFinite(q) || q <= 0 || q > 1) continue;
    const locale = range.trim() === '*' ? DEFAULT_LOCALE : supportedLocale(range);
    // Among equal qualities the first listed wins.
    if (locale && (!best || q > best.q)) best = { locale, q };
  }
  if (accepted.size > 1000) accepted.clear();
  accepted.set(header, best?.locale ?? null);
  return best?.locale;
}

/** §15: the user's locale, else the best match of Accept-Language, else the tenant's `locale.default`, else English. */
export function negotiateLocale(choices: { user?: string | null; acceptLanguage?: string; tenantDefault?: string | null }): Locale {
  return supportedLocale(choices.user) ?? fromAcceptLanguage(choices.acceptLanguage) ?? supportedLocale(choices.tenantDefault) ?? DEFAULT_LOCALE;
}
