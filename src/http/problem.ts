import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, KINDS, kindOf } from '../error-codes.js';
import { DomainError, type FieldError } from '../errors.js';

/** PostgreSQL SQLSTATEs that reach the API, as one table (class 08 and 57P are "database down"). */
const POSTGRES: Record<string, { code: ErrorCode; detail: string }> = {
  '23505': { code: 'database.unique_violation', detail: 'a row with the same unique value already exists' },
  '23503': { code: 'database.reference_missing', detail: 'a referenced row does not exist' },
  '23514': { code: 'database.constraint_violation', detail: 'a value breaks a constraint' },
  '23502': { code: 'database.constraint_violation', detail: 'a required value is missing' },
  '22P02': { code: 'database.constraint_violation', detail: 'a value has the wrong format' },
  '22001': { code: 'database.constraint_violation', detail: 'a value is too long' },
  '22003': { code: 'database.constraint_violation', detail: 'a number is out of range' },
  '22007': { code: 'database.constraint_violation', detail: 'a date or time has the wrong format' },
  '22008': { code: 'database.constraint_violation', detail: 'a date or time is out of range' },
  '22021': { code: 'database.constraint_violation', detail: 'a text holds a character that cannot be stored (such as NUL)' },
  '22P05': { code: 'database.constraint_violation', detail: 'a text holds a character that cannot be stored (such as NUL)' },
  '40001': { code: 'database.concurrent_change', detail: 'a concurrent change conflicted with this one; retry' },
  '40P01': { code: 'database.concurrent_change', detail: 'a concurrent change conflicted with this one; retry' },
  '55P03': { code: 'database.concurrent_change', detail: 'the row is locked by another change; retry' },
  '53300': { code: 'database.busy', detail: 'the database has no free connections' },
};

const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down)/i;

export function problemType(code: string): string {
  return `urn:system-service:problem:${code}`;
}

export interface Problem {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly errors?: readonly FieldError[];
  /** Only where the status is not the code's kind's (a framework 4xx keeps its own). */
  readonly status?: number;
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
  return { code: 'request.invalid', detail, errors };
}

/** Maps any thrown error to a problem; unknown errors become a 500 whose detail says nothing internal. */
export function toProblem(error: unknown): Problem {
  if (error instanceof DomainError) return { code: error.code, detail: error.message, ...(error.errors.length ? { errors: error.errors } : {}) };
  const err = error as Partial<FastifyError> & { code?: string; message?: string };
  if (err.validation) return fromValidation(err as FastifyError);
  if (typeof err.code === 'string' && POSTGRES[err.code]) return POSTGRES[err.code]!;
  if ((typeof err.code === 'string' && (err.code.startsWith('08') || err.code.startsWith('57P'))) || CONNECTION_FAILURE.test(err.message ?? '')) {
    return { code: 'database.unavailable', detail: 'the database is unavailable; retry shortly' };
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    if (err.statusCode === 415) {
      return {
        code: 'request.unsupported_media_type',
        detail: 'the request body has a content type this route does not take (JSON routes take application/json; uploads multipart/form-data)',
      };
    }
    if (err.statusCode === 413) return { code: 'request.too_large', detail: err.message ?? 'the request body is too large' };
    return { code: 'request.malformed', status: err.statusCode, detail: err.message ?? 'bad request' };
  }
  return { code: 'internal', detail: 'an unexpected error occurred; the request id identifies it in the logs' };
}

/** The problem+json body of a problem: `type`, `title` and `status` from its code's kind, and the code itself. */
export function problemBody(problem: Problem, requestId: string) {
  const kind = kindOf(problem.code);
  const status = problem.status ?? KINDS[kind].status;
  const title = problem.status ? (STATUS_CODES[problem.status] ?? KINDS[kind].title) : KINDS[kind].title;
  return { type: problemType(kind), title, status, code: problem.code, detail: problem.detail, ...(problem.errors ? { errors: problem.errors } : {}), request_id: requestId };
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Problem): FastifyReply {
  const body = problemBody(problem, request.id);
  if (body.status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.status(body.status).type('application/problem+json').send(body);
}

/** One error handler for the whole app: every error leaves as problem+json with the request id. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error);
    if (KINDS[kindOf(problem.code)].status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: problem.code, detail: problem.detail }, 'request refused');
    return sendProblem(request, reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, { code: 'route.not_found', detail: `no route for ${request.method} ${request.url.split('?')[0]}` }),
  );
}
