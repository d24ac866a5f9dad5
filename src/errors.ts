/** One field-level reason, as listed in a problem's `errors`. */
export interface FieldError {
  readonly field: string;
  readonly reason: string;
}

export type ErrorCode =
  | 'invalid_input'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'precondition_failed'
  | 'precondition_required'
  | 'payload_too_large'
  | 'unprocessable'
  | 'rate_limited'
  | 'unavailable';

/** Errors the services throw; the HTTP layer maps `code` to a status, the CLI prints `message`. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors: readonly FieldError[] = [],
  ) {
    super(message);
    this.name = 'DomainError';
  }

  static invalid(field: string, reason: string): DomainError {
    return new DomainError('invalid_input', `${field} ${reason}`, [{ field, reason }]);
  }

  static notFound(what: string): DomainError {
    return new DomainError('not_found', `${what} not found`);
  }

  static conflict(message: string): DomainError {
    return new DomainError('conflict', message);
  }
}

/**
 * Runs a write and turns a unique violation into a 409 with a message a caller understands;
 * `message` may pick one by the violated constraint's name.
 */
export async function conflictOnUnique<T>(work: () => Promise<T>, message: string | ((constraint: string) => string | undefined)): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const e = error as { code?: string; constraint?: string };
    if (e.code !== '23505') throw error;
    const text = typeof message === 'string' ? message : message(e.constraint ?? '');
    if (text) throw DomainError.conflict(text);
    throw error;
  }
}

/** Throws 412 when a version was required (If-Match) and the row has moved on. */
export function checkVersion(expected: number | undefined, actual: number): void {
  if (expected !== undefined && expected !== actual) {
    throw new DomainError('precondition_failed', `If-Match does not match the current version ("${actual}")`);
  }
}
