import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, type ErrorCode, type FieldError } from '../errors.js';

interface ProblemKind {
  readonly status: number;
  readonly title: string;
}

const DOMAIN: Record<ErrorCode, ProblemKind> = {
  invalid_input: { status: 400, title: 'Invalid input' },
  unauthenticated: { status: 401, title: 'Unauthenticated' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unprocessable: { status: 422, title: 'Unprocessable request' },
  precondition_required: { status: 428, title: 'Precondition required' },
  rate_limited: { status: 429, title: 'Too many requests' },
  unavailable: { status: 503, title: 'Service unavailable' },
};

/** PostgreSQL SQLSTATEs that reach the API, as one table (class 08 and 57P are "database down"). */
const POSTGRES: Record<string, { code: ErrorCode; detail: string }> = {
  '23505': { code: 'conflict', detail: 'a row with the same unique value already exists' },
  '23503': { code: 'invalid_input', detail: 'a referenced row does not exist' },
  '23514': { code: 'invalid_input', detail: 'a value breaks a constraint' },
  '23502': { code: 'invalid_input', detail: 'a required value is missing' },
  '22P02': { code: 'invalid_input', detail: 'a value has the wrong format' },
  '22001': { code: 'invalid_input', detail: 'a value is too long' },
  '22003': { code: 'invalid_input', detail: 'a number is out of range' },
  '22007': { code: 'invalid_input', detail: 'a date or time has the wrong format' },
  '22008': { code: 'invalid_input', detail: 'a date or time is out of range' },
  '22021': { code: 'invalid_input', detail: 'a text holds a character that cannot be stored (such as NUL)' },
  '22P05': { code: 'invalid_input', detail: 'a text holds a character that cannot be stored (such as NUL)' },
  '40001': { code: 'conflict', detail: 'a concurrent change conflicted with this one; retry' },
  '40P01': { code: 'conflict', detail: 'a concurrent change conflicted with this one; retry' },
  '55P03': { code: 'conflict', detail: 'the row is locked by another change; retry' },
  '53300': { code: 'unavailable', detail: 'the database has no free connections' },
};

const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down)/i;

export function problemType(code: string): string {
  return `urn:system-service:problem:${code}`;
}

interface Problem {
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly errors?: readonly FieldError[];
}

interface ValidationIssue {
  readonly keyword?: string;
  readonly instancePath: string;
  readonly params: unknown;
  readonly message?: string;
}

/**
 * Ajv errors as one `{field, reason}` per field, dotted under `prefix` (`querystring.page`,
 * `config.port`). The errors a union makes (one `const` per allowed value, `must be null`,
 * `must match a schema in anyOf`) read as one reason: "must be one of a, b, c".
 */
export function fieldErrors(issues: readonly ValidationIssue[], prefix = '', additional = 'is not an accepted field', whole = prefix || 'request'): FieldError[] {
  const fields = new Map<string, { reasons: string[]; allowed: unknown[]; orNull: boolean; union: boolean }>();
  for (const v of issues) {
    const params = (v.params ?? {}) as { missingProperty?: string; additionalProperty?: string; allowedValue?: unknown; allowedValues?: unknown[]; type?: string };
    const base = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const leaf = params.missingProperty ?? params.additionalProperty;
    const field = [prefix, base, leaf].filter(Boolean).join('.') || whole;
    const entry = fields.get(field) ?? { reasons: [], allowed: [], orNull: false, union: false };
    fields.set(field, entry);
    if (params.additionalProperty) entry.reasons.push(additional);
    else if (params.missingProperty) entry.reasons.push('is required');
    else if (v.keyword === 'const') entry.allowed.push(params.allowedValue);
    else if (v.keyword === 'enum') entry.allowed.push(...(params.allowedValues ?? []));
    else if (v.keyword === 'anyOf' || v.keyword === 'oneOf') entry.union = true;
    else if (v.keyword === 'type' && params.type === 'null') entry.orNull = true;
    else entry.reasons.push(v.message ?? 'is invalid');
  }
  return [...fields].map(([field, e]) => {
    const allowed = e.allowed.filter((a) => a !== null);
    if (allowed.length) e.reasons.unshift(`must be one of ${allowed.join(', ')}${e.orNull || e.allowed.includes(null) ? ' (or null)' : ''}`);
    if (!e.reasons.length) e.reasons.push(e.orNull ? 'must be null' : e.union ? 'is not valid' : 'is invalid');
    return { field, reason: [...new Set(e.reasons)].join('; ') };
  });
}

function fromValidation(error: FastifyError): Problem {
  const context = String(error.validationContext ?? 'request');
  const errors = fieldErrors(error.validation ?? [], context === 'body' ? '' : context, undefined, context);
  const detail = errors.map((e) => `${e.field} ${e.reason}`).join('; ') || error.message;
  return { code: 'invalid_input', status: 400, title: DOMAIN.invalid_input.title, detail, errors };
}

/** Maps any thrown error to a problem; unknown errors become a 500 whose detail says nothing internal. */
export function toProblem(error: unknown): Problem {
  if (error instanceof DomainError) {
    const kind = DOMAIN[error.code];
    return { code: error.code, ...kind, detail: error.message, ...(error.errors.length ? { errors: error.errors } : {}) };
  }
  const err = error as Partial<FastifyError> & { code?: string; message?: string };
  if (err.validation) return fromValidation(err as FastifyError);
  if (typeof err.code === 'string' && POSTGRES[err.code]) {
    const mapped = POSTGRES[err.code]!;
    return { code: mapped.code, ...DOMAIN[mapped.code], detail: mapped.detail };
  }
  if ((typeof err.code === 'string' && (err.code.startsWith('08') || err.code.startsWith('57P'))) || CONNECTION_FAILURE.test(err.message ?? '')) {
    return { code: 'unavailable', ...DOMAIN.unavailable, detail: 'the database is unavailable; retry shortly' };
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    const unsupported = err.statusCode === 415;
    return {
      code: unsupported ? 'unsupported_media_type' : 'invalid_request',
      status: err.statusCode,
      title: STATUS_CODES[err.statusCode] ?? 'Bad request',
      detail: unsupported ? 'the request body has a content type this route does not take (JSON routes take application/json; uploads multipart/form-data)' : (err.message ?? 'bad request'),
    };
  }
  return { code: 'internal', status: 500, title: 'Internal error', detail: 'an unexpected error occurred; the request id identifies it in the logs' };
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Problem): FastifyReply {
  const { code, errors, ...rest } = problem;
  if (problem.status === 401) reply.header('www-authenticate', 'Bearer');
  return reply
    .status(problem.status)
    .type('application/problem+json')
    .send({ type: problemType(code), ...rest, ...(errors ? { errors } : {}), request_id: request.id });
}

/** One error handler for the whole app: every error leaves as problem+json with the request id. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error);
    if (problem.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: problem.code, detail: problem.detail }, 'request refused');
    return sendProblem(request, reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, { code: 'not_found', status: 404, title: 'Not found', detail: `no route for ${request.method} ${request.url.split('?')[0]}` }),
  );
}
