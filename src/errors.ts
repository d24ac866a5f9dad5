import { type ErrorCode, type ErrorKind, kindOf } from './error-codes.js';
import { DEFAULT_LOCALE, render, text, type Locale, type Text } from './i18n/index.js';

export type { ErrorCode, ErrorKind } from './error-codes.js';
export { text, type Text } from './i18n/index.js';

/** One field-level refusal, as listed in a problem's `errors` (`{field, reason}`, the reasons rendered in the reader's language). */
export interface FieldError {
  readonly field: string;
  readonly reasons: readonly Text[];
}

/** A field's reasons in one locale, joined. */
export const reasonIn = (locale: Locale, error: FieldError): string => error.reasons.map((r) => render(locale, r)).join('; ');

/** Every field's reasons in one locale, as a problem's detail ("name must be …; email is required"). */
export const fieldsDetail = (locale: Locale, errors: readonly FieldError[]): string =>
  errors.map((e) => render(locale, text('problem.field_reason', { field: e.field, reason: reasonIn(locale, e) }))).join('; ');

/**
 * Errors the services throw, with a message key rather than words: the HTTP layer answers the
 * code's kind (status) with the detail in the reader's language, the CLI and logs read `message`
 * (English). Without a detail, the code's own message (`error.<code>`) or the fields' reasons serve.
 */
export class DomainError extends Error {
  readonly kind: ErrorKind;

  constructor(
    readonly code: ErrorCode,
    readonly detail?: Text,
    readonly errors: readonly FieldError[] = [],
  ) {
    super('');
    this.message = this.detailIn(DEFAULT_LOCALE);
    this.name = 'DomainError';
    this.kind = kindOf(code);
  }

  detailIn(locale: Locale): string {
    if (this.detail) return render(locale, this.detail);
    if (this.errors.length) return fieldsDetail(locale, this.errors);
    return render(locale, text(`error.${this.code}`));
  }

  /** A field of the input is refused: `request.invalid` (or a more telling code) with the field and the reason. */
  static invalid(field: string, reason: Text, code: ErrorCode = 'request.invalid'): DomainError {
    return new DomainError(code, undefined, [{ field, reasons: [reason] }]);
  }

  /** `<entity>.not_found`, its detail naming what was not found when `what` says. */
  static notFound(entity: NotFoundEntity, what?: Text): DomainError {
    return new DomainError(`${entity}.not_found`, what);
  }

  static conflict(code: ErrorCode, detail?: Text): DomainError {
    return new DomainError(code, detail);
  }
}

/**
 * Checks every field of one input before refusing it: each `check` runs one field's rule and
 * keeps its `request.invalid` reasons (the value is then undefined); `done` throws them all
 * together, so a caller learns every failing field at once, as from the schema validation.
 */
export class FieldChecks {
  private readonly failed: FieldError[] = [];

  check<T>(rule: () => T): T | undefined {
    try {
      return rule();
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== 'request.invalid' || error.errors.length === 0) throw error;
      this.failed.push(...error.errors);
      return undefined;
    }
  }

  fail(field: string, reason: Text): void {
    this.failed.push({ field, reasons: [reason] });
  }

  get ok(): boolean {
    return this.failed.length === 0;
  }

  done(): void {
    if (this.failed.length) throw new DomainError('request.invalid', undefined, this.failed);
  }
}

/** The entities that have a `<entity>.not_found` code. */
export type NotFoundEntity = { [C in ErrorCode]: C extends `${infer E}.not_found` ? E : never }[ErrorCode];

/** A unique violation's answer: a fixed one, or one picked by the violated constraint's name. */
export type UniqueConflict = DomainError | ((constraint: string) => DomainError | undefined);

/** Runs a write and turns a unique violation into the 409 the caller names. */
export async function conflictOnUnique<T>(work: () => Promise<T>, conflict: UniqueConflict): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const e = error as { code?: string; constraint?: string };
    if (e.code !== '23505') throw error;
    const refusal = typeof conflict === 'function' ? conflict(e.constraint ?? '') : conflict;
    throw refusal ?? error;
  }
}

/** Throws 412 when a version was required (If-Match) and the row has moved on. */
export function checkVersion(expected: number | undefined, actual: number): void {
  if (expected !== undefined && expected !== actual) {
    throw new DomainError('request.version_mismatch', text('detail.version_mismatch', { version: actual }));
  }
}
