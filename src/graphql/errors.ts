import { KINDS, type ErrorKind } from '../error-codes.js';
import { DomainError, reasonIn } from '../errors.js';
import { toProblem } from '../http/problem.js';
import type { Locale } from '../i18n/index.js';
import { camel } from './resolvers.js';
import { graphql } from './graphql.js';

/** §12's `extensions.code` of each kind of refusal. */
const CODES: Record<ErrorKind, string> = {
  invalid_input: 'BAD_USER_INPUT',
  unprocessable: 'BAD_USER_INPUT',
  payload_too_large: 'BAD_USER_INPUT',
  unsupported_media_type: 'BAD_USER_INPUT',
  unauthenticated: 'UNAUTHENTICATED',
  forbidden: 'FORBIDDEN',
  not_found: 'NOT_FOUND',
  conflict: 'CONFLICT',
  precondition_failed: 'CONFLICT',
  precondition_required: 'CONFLICT',
  upgrade_required: 'BAD_USER_INPUT',
  rate_limited: 'RATE_LIMITED',
  unavailable: 'SERVICE_UNAVAILABLE',
  internal: 'INTERNAL_SERVER_ERROR',
};

/**
 * A resolver's error as GraphQL answers it: the REST problem's detail in the reader's language as
 * the message, `extensions.code` (§12), the problem's `code`, the fields' reasons (camelCase
 * names) and the request id; an unexpected error says only that it happened.
 */
export function describeError(error: unknown, locale: Locale, requestId?: string) {
  const problem = toProblem(error);
  const kind = new DomainError(problem.code).kind;
  return {
    status: KINDS[kind].status,
    message: new DomainError(problem.code, problem.detail, problem.errors).detailIn(locale),
    extensions: {
      code: CODES[kind],
      problem: problem.code,
      ...(problem.errors ? { errors: problem.errors.map((e) => ({ field: e.field.split('.').map(camel).join('.'), reason: reasonIn(locale, e) })) } : {}),
      ...(requestId ? { request_id: requestId } : {}),
    },
  };
}

/** The same, as an error a subscription's setup throws (graphql-ws sends it as it is). */
export function subscriptionError(error: unknown, locale: Locale): Error {
  const { message, extensions } = describeError(error, locale);
  return new graphql.GraphQLError(message, { extensions });
}
