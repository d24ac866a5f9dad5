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
