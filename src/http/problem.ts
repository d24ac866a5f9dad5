import { traceIds } from '../observability/tracing.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, KINDS, kindOf } from '../error-codes.js';
import { DomainError, reasonIn, type FieldError } from '../errors.js';
import { DEFAULT_LOCALE, render, text, type Locale, type MessageKey, type Text } from '../i18n/index.js';
import { requestLocale } from './locale.js';

/** PostgreSQL SQLSTATEs that reach the API, as one table (class 08 and 57P are "database down"). */
const POSTGRES: Record<string, { code: ErrorCode; detail: MessageKey }> = {
  '23505': { code: 'database.unique_violation', detail: 'detail.db.unique' },
  '23503': { code: 'database.reference_missing', detail: 'detail.db.reference' },
  '23514': { code: 'database.constraint_violation', detail: 'detail.db.constraint' },
  '23502': { code: 'database.constraint_violation', detail: 'detail.db.not_null' },
  '22P02': { code: 'database.constraint_violation', detail: 'detail.db.format' },
  '22001': { code: 'database.constraint_violation', detail: 'detail.db.too_long' },
  '22003': { code: 'database.constraint_violation', detail: 'detail.db.out_of_range' },
  '22007': { code: 'database.constraint_violation', detail: 'detail.db.datetime_format' },
  '22008': { code: 'database.constraint_violation', detail: 'detail.db.datetime_range' },
  '22021': { code: 'database.constraint_violation', detail: 'detail.db.bad_character' },
  '22P05': { code: 'database.constraint_violation', detail: 'detail.db.bad_character' },
  '40001': { code: 'database.concurrent_change', detail: 'detail.db.concurrent' },
  '40P01': { code: 'database.concurrent_change', detail: 'detail.db.concurrent' },
  '55P03': { code: 'database.concurrent_change', detail: 'detail.db.locked' },
  '53300': { code: 'database.busy', detail: 'detail.db.busy' },
  // A table or column of a later migration: the schema has not been migrated to this release yet.
  '42P01': { code: 'tenant.migrating', detail: 'detail.db.schema_behind' },
  '42703': { code: 'tenant.migrating', detail: 'detail.db.schema_behind' },
};

const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down)/i;

export function problemType(code: string): string {
  return `urn:system-service:problem:${code}`;
}

export interface Problem {
  readonly code: ErrorCode;
  /** The detail's message; without one, the fields' reasons or the code's own message. */
  readonly detail?: Text;
  readonly errors?: readonly FieldError[];
  /** Only where the status is not the code's kind's (a framework 4xx keeps its own). */
  readonly status?: number;
}

interface ValidationIssue {
  readonly keyword?: string;
  readonly instancePath: string;
  readonly params: unknown;
}

/** Ajv keywords whose reason is their limit: `minLength` 12 → "must be at least 12 characters". */
const LIMIT_REASONS: Record<string, MessageKey> = {
  minLength: 'reason.min_length',
  maxLength: 'reason.max_length',
  minimum: 'reason.minimum',
  maximum: 'reason.maximum',
  exclusiveMinimum: 'reason.exclusive_minimum',
  exclusiveMaximum: 'reason.exclusive_maximum',
  minItems: 'reason.min_items',
  maxItems: 'reason.max_items',
  minProperties: 'reason.min_properties',
  maxProperties: 'reason.max_properties',
};

/** The reason of one Ajv keyword, as a message (never Ajv's own English). */
function keywordReason(keyword: string | undefined, params: Record<string, unknown>): Text {
  const limited = keyword === undefined ? undefined : LIMIT_REASONS[keyword];
  if (limited) return text(limited, { limit: Number(params.limit) });
  if (keyword === 'type') return text('reason.type', { type: String(params.type) });
  if (keyword === 'uniqueItems') return text('reason.unique_items');
  if (keyword === 'multipleOf') return text('reason.multiple_of', { multiple: Number(params.multipleOf) });
  // Select keys are identifiers: `date-time` is asked for as `date_time`.
  if (keyword === 'format') return text('reason.format', { format: String(params.format).replace(/[^a-z0-9]/gi, '_') });
  if (keyword === 'pattern') return text('reason.pattern', { pattern: String(params.pattern) });
  return text('reason.invalid');
}

/**
 * Ajv errors as one `{field, reasons}` per field, dotted under `prefix` (`querystring.page`,
 * `config.port`). The errors a union makes (one `const` per allowed value, `must be null`,
 * `must match a schema in anyOf`) read as one reason: "must be one of a, b, c".
 */
export function fieldErrors(issues: readonly ValidationIssue[], prefix = '', additional: Text = text('reason.not_accepted'), whole = prefix || 'request'): FieldError[] {
  const fields = new Map<string, { reasons: Text[]; allowed: unknown[]; orNull: boolean; union: boolean }>();
  for (const v of issues) {
    const params = (v.params ?? {}) as { missingProperty?: string; additionalProperty?: string; allowedValue?: unknown; allowedValues?: unknown[]; type?: string };
    const base = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const leaf = params.missingProperty ?? params.additionalProperty;
    const field = [prefix, base, leaf].filter(Boolean).join('.') || whole;
    const entry = fields.get(field) ?? { reasons: [], allowed: [], orNull: false, union: false };
    fields.set(field, entry);
    if (params.additionalProperty) entry.reasons.push(additional);
    else if (params.missingProperty) entry.reasons.push(text('reason.required'));
    else if (v.keyword === 'const') entry.allowed.push(params.allowedValue);
    else if (v.keyword === 'enum') entry.allowed.push(...(params.allowedValues ?? []));
    else if (v.keyword === 'anyOf' || v.keyword === 'oneOf') entry.union = true;
    else if (v.keyword === 'type' && params.type === 'null') entry.orNull = true;
    else entry.reasons.push(keywordReason(v.keyword, params));
  }
  return [...fields].map(([field, e]) => {
    const allowed = e.allowed.filter((a) => a !== null);
    const orNull = e.orNull || e.allowed.includes(null);
    if (allowed.length) e.reasons.unshift(text(orNull ? 'reason.one_of_or_null' : 'reason.one_of', { values: allowed.join(', ') }));
    if (!e.reasons.length) e.reasons.push(text(e.orNull ? 'reason.must_be_null' : e.union ? 'reason.not_valid' : 'reason.invalid'));
    const seen = new Set<string>();
    return { field, reasons: e.reasons.filter((r) => !seen.has(JSON.stringify(r)) && seen.add(JSON.stringify(r))) };
  });
}

function fromValidation(error: FastifyError): Problem {
  const context = String(error.validationContext ?? 'request');
  const errors = fieldErrors(error.validation ?? [], context === 'body' ? '' : context, undefined, context);
  return errors.length ? { code: 'request.invalid', errors } : { code: 'request.invalid' };
}

/** Fastify's own 4xx errors by code, as messages. */
const FRAMEWORK: Record<string, MessageKey> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: 'detail.empty_json_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'detail.malformed_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'detail.bad_content_length',
};

/** Maps any thrown error to a problem; unknown errors become a 500 whose detail says nothing internal. */
export function toProblem(error: unknown): Problem {
  if (error instanceof DomainError) return { code: error.code, ...(error.detail ? { detail: error.detail } : {}), ...(error.errors.length ? { errors: error.errors } : {}) };
  const err = error as Partial<FastifyError> & { code?: string; message?: string; statusCode?: number };
  if (err.validation) return fromValidation(err as FastifyError);
  if (typeof err.code === 'string' && POSTGRES[err.code]) return { code: POSTGRES[err.code]!.code, detail: text(POSTGRES[err.code]!.detail) };
  if ((typeof err.code === 'string' && (err.code.startsWith('08') || err.code.startsWith('57P'))) || CONNECTION_FAILURE.test(err.message ?? '')) {
    return { code: 'database.unavailable' };
  }
  const status = err.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 415) return { code: 'request.unsupported_media_type' };
    if (status === 413) return { code: 'request.too_large' };
    const known = error instanceof SyntaxError ? 'detail.malformed_json' : typeof err.code === 'string' ? FRAMEWORK[err.code] : undefined;
    return { code: 'request.malformed', status, ...(known ? { detail: text(known) } : {}) };
  }
  return { code: 'internal' };
}

/** The problem+json body of a problem in `locale`: `type` and `status` from its code's kind (never translated), `title`, `detail` and reasons translated. */
/** With tracing on, a problem names its trace beside its request id, to find it in the tracing backend. */
function traceId(): { trace_id?: string } {
  const { trace_id } = traceIds();
  return trace_id ? { trace_id } : {};
}

export function problemBody(problem: Problem, requestId: string, locale: Locale = DEFAULT_LOCALE) {
  const kind = kindOf(problem.code);
  const status = problem.status ?? KINDS[kind].status;
  const title = problem.status && problem.status !== KINDS[kind].status ? render(locale, text('title.http_status', { status: problem.status })) : render(locale, text(`title.${kind}`));
  const detail = new DomainError(problem.code, problem.detail, problem.errors).detailIn(locale);
  const errors = problem.errors?.map((e) => ({ field: e.field, reason: reasonIn(locale, e) }));
  return { type: problemType(kind), title, status, code: problem.code, detail, ...(errors ? { errors } : {}), request_id: requestId, ...traceId() };
}

export async function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Problem): Promise<FastifyReply> {
  const locale = await requestLocale(request);
  const body = problemBody(problem, request.id, locale);
  reply.header('content-language', locale);
  if (body.status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.status(body.status).type('application/problem+json').send(body);
}

/** The problem of an error, logged: a failure (5xx) with its error, a refusal with its code and English detail. */
export function loggedProblem(request: FastifyRequest, error: unknown): Problem {
  const problem = toProblem(error);
  if (KINDS[kindOf(problem.code)].status >= 500) request.log.error({ err: error }, 'request failed');
  else request.log.info({ code: problem.code, detail: new DomainError(problem.code, problem.detail, problem.errors).message }, 'request refused');
  return problem;
}

/** One error handler for the whole app: every error leaves as problem+json with the request id. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => sendProblem(request, reply, loggedProblem(request, error)));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, { code: 'route.not_found', detail: text('detail.no_route', { method: request.method, path: request.url.split('?')[0]! }) }),
  );
}
