import { type ErrorCode, type ErrorKind, kindOf } from './error-codes.js';

export type { ErrorCode, ErrorKind } from './error-codes.js';

/** One field-level reason, as listed in a problem's `errors`. */
export interface FieldError {
  readonly field: string;
  readonly reason: string;
}

/** Errors the services throw; the HTTP layer answers the code's kind (status), the CLI prints `message`. */
export class DomainError extends Error {
  readonly kind: ErrorKind;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors: readonly FieldError[] = [],
  ) {
    super(message);
    this.name = 'DomainError';
    this.kind = kindOf(code);
  }

  /** A field of the input is refused: `request.invalid` (or a more telling code) with the field and the reason. */
  static invalid(field: string, reason: string, code: ErrorCode = 'request.invalid'): DomainError {
    return new DomainError(code, `${field} ${reason}`, [{ field, reason }]);
  }

  /** `<entity>.not_found`, saying "<what> not found". */
  static notFound(entity: NotFoundEntity, what: string = entity.replace(/_/g, ' ')): DomainError {
    return new DomainError(`${entity}.not_found`, `${what} not found`);
  }

  static conflict(code: ErrorCode, message: string): DomainError {
    return new DomainError(code, message);
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

  fail(field: string, reason: string): void {
    this.failed.push({ field, reason });
  }

  get ok(): boolean {
    return this.failed.length === 0;
  }

  done(): void {
    if (this.failed.length) throw new DomainError('request.invalid', this.failed.map((e) => `${e.field} ${e.reason}`).join('; '), this.failed);
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
    throw new DomainError('request.version_mismatch', `If-Match does not match the current version ("${actual}")`);
  }
}
