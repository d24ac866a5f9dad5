import { Type } from 'typebox';

/** RFC 9457 problem details, as every error response is documented. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'Stable machine code (`user.email_taken`, `permission.denied`, ...): docs/ERRORS.md lists them all' }),
    detail: Type.String(),
    request_id: Type.String(),
    trace_id: Type.Optional(Type.String({ description: 'The OpenTelemetry trace of the request, when tracing is on' })),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), reason: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' },
);

export const problemRef = Type.Ref('Problem');

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input: `errors` names each field and the reason',
  401: 'Missing, invalid or expired credentials',
  403: 'Authenticated, but not allowed',
  404: 'Unknown (also: another tenant\'s or a deleted row)',
  409: 'Conflicts with the current state',
  412: 'If-Match does not match the current version',
  413: 'Payload too large',
  415: 'Unsupported media type (send the documented content type)',
  422: 'Idempotency-Key reused with another request',
  426: 'Upgrade required: the route speaks WebSocket only',
  428: 'If-Match required',
  429: 'Throttled: retry after the Retry-After seconds',
  503: 'A dependency (the database) is unavailable; retry shortly',
};

/** Error responses of a route, documented as application/problem+json (503 always applies). */
export function problems(...statuses: number[]) {
  return Object.fromEntries(
    [...new Set([...statuses, 503])].map((status) => [
      status,
      { description: ERROR_DESCRIPTIONS[status] ?? 'Error', content: { 'application/problem+json': { schema: problemRef } } },
    ]),
  );
}

/** Years 0001 to 9999: what PostgreSQL and JavaScript both read the same way. */
export const YEAR_1_TO_9999 = '^(?!0000)[0-9]{4}-';

/** A timestamp: `Date` in code, an RFC 3339 string on the wire. */
export const DateTime = Type.Unsafe<Date>({ type: 'string', format: 'date-time', pattern: YEAR_1_TO_9999 });

export const PaginationQuery = Type.Object({
  page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
  page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
});

export function pageOf<T extends ReturnType<typeof Type.Object>>(item: T) {
  return Type.Object({ items: Type.Array(item), total: Type.Integer(), page: Type.Integer(), page_size: Type.Integer() });
}

/** A session as listed to its user or to an administrator. */
export const SessionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  ip_address: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  created_at: DateTime,
  last_seen_at: DateTime,
  expires_at: DateTime,
});

/** The query of a change that can be previewed: `?dry_run=true` (docs/PERMISSIONS.md, "Change preview"). */
export const DryRunQuery = Type.Object({
  dry_run: Type.Optional(
    Type.Boolean({
      description:
        'true: check the change as it would be made (the same permissions, out-rank rules and errors), change nothing, and answer 200 with the users whose effective permissions it would move',
    }),
  ),
});

/** A dry run's answer: the users a change would move, each with the permissions gained and lost. */
export const ChangePreviewSchema = Type.Object(
  {
    dry_run: Type.Literal(true),
    total_affected: Type.Integer({ minimum: 0, description: 'Every user whose effective permissions the change would move' }),
    affected: Type.Array(
      Type.Object({
        user_id: Type.String({ format: 'uuid' }),
        email: Type.String({ examples: ['ada@acme.example'] }),
        gained: Type.Array(Type.String(), { examples: [['audit_logs.read']] }),
        lost: Type.Array(Type.String(), { examples: [['users.delete']] }),
      }),
      { description: 'The first 1,000 of them by email, with the effective permissions each would gain and lose' },
    ),
  },
  { $id: 'ChangePreview', description: 'Dry run: what the change would do; nothing was changed' },
);
