import { sql, type SqlBool } from 'kysely';
import { Type } from 'typebox';
import { DomainError, FieldChecks, text } from '../../errors.js';
import { DateTime, problems } from '../../http/schemas.js';
import { requireTenant } from '../../http/context.js';
import { nullable, optional, partial, Text, Timestamp, Title, Uuid } from '../fields.js';
import { expansionWork, parseRecurrence, ruleFor } from '../recurrence.js';
import { validTimeZone } from '../../i18n/zones.js';
import { checkUsers, filter, TARGET_TYPE, type ListQuery, type RecordSpec } from '../resource.js';

/** The most occurrences one query answers: a larger answer needs a narrower range. */
export const MAX_OCCURRENCES = 10_000;
/**
 * The most expansion work (candidate instants walked, see expansionWork) one query may cost:
 * expanding runs on the event loop, so this bounds how long it holds it (about 0.3 s here).
 */
export const MAX_EXPANSION_WORK = 50_000;

const RRuleText = Type.String({ minLength: 1, maxLength: 1000, description: 'RFC 5545 recurrence rule, e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10 (FREQ YEARLY to HOURLY; starts at starts_at, expanded in UTC)', examples: ['FREQ=WEEKLY;BYDAY=MO;COUNT=10'] });
const Attendees = Type.Array(Uuid, { maxItems: 500, description: 'User ids of this tenant' });


interface EventRow {
  readonly id: string;
  readonly title: string;
  readonly location: string | null;
  readonly all_day: boolean;
  readonly starts_at: Date;
  readonly ends_at: Date;
  readonly rrule: string | null;
  readonly eventable_type: string | null;
  readonly eventable_id: string | null;
}

export interface Occurrence {
  readonly starts_at: Date;
  readonly ends_at: Date;
}

/** Occurrences of an event that overlap [from, to): one for a single event, the expanded series for a recurring one. */
export function occurrences(
  event: { starts_at: Date; ends_at: Date; rrule: string | null },
  from: Date,
  to: Date,
  options = event.rrule ? parseRecurrence(event.rrule).options : undefined,
): Occurrence[] {
  const duration = event.ends_at.getTime() - event.starts_at.getTime();
  if (!options) return event.starts_at < to && event.ends_at > from ? [{ starts_at: event.starts_at, ends_at: event.ends_at }] : [];
  const rule = ruleFor(options, event.starts_at);
  const found: Occurrence[] = [];
  // An occurrence overlaps when it starts before `to` and ends after `from`.
  rule.between(new Date(from.getTime() - duration), to, true, (start) => {
    const end = new Date(start.getTime() + duration);
    if (start < to && end > from) found.push({ starts_at: start, ends_at: end });
    return found.length <= MAX_OCCURRENCES;
  });
  return found;
}

const create = {
  title: Title,
  description: optional(nullable(Text)),
  location: optional(nullable(Type.String({ maxLength: 500 }))),
  starts_at: Timestamp,
  ends_at: Timestamp,
  all_day: optional(Type.Boolean()),
  timezone: optional(nullable(Type.String({ maxLength: 64, description: 'IANA time zone, e.g. Europe/Paris', examples: ['Europe/Paris'] }))),
  rrule: optional(nullable(RRuleText)),
  attendees: optional(Attendees),
};

const RangeQuery = {
  from: DateTime,
  to: DateTime,
};

const OccurrenceSchema = Type.Object({
  event_id: Uuid,
  starts_at: Timestamp,
  ends_at: Timestamp,
  title: Type.String(),
  location: nullable(Type.String()),
  all_day: Type.Boolean(),
  recurring: Type.Boolean(),
  eventable_type: nullable(Type.String()),
  eventable_id: nullable(Uuid),
});

function checkRange(from: Date, to: Date): void {
  if (!(from < to)) throw DomainError.invalid('to', text('reason.to_after_from'));
}

/**
 * Events: a time range (starts_at < ends_at), all-day or not, a place, attendees (users of the
 * tenant) and an optional RRULE; lists take from/to, and `events/occurrences` expands series.
 */
export const events: RecordSpec = {
  table: 'events',
  path: 'events',
  label: 'event',
  schemaId: 'Event',
  target: 'eventable',
  columns: ['title', 'description', 'location', 'starts_at', 'ends_at', 'all_day', 'timezone', 'rrule', 'attendees'],
  fields: {
    title: Type.String(),
    description: nullable(Type.String()),
    location: nullable(Type.String()),
    starts_at: Timestamp,
    ends_at: Timestamp,
    all_day: Type.Boolean(),
    timezone: nullable(Type.String()),
    rrule: nullable(Type.String()),
    attendees: Type.Array(Uuid),
  },
  create,
  update: partial(create),
  sorts: ['starts_at', 'ends_at', 'created_at', 'updated_at', 'title'],
  defaultSort: { column: 'starts_at', direction: 'asc' },
  search: ['title', 'description', 'location'],
  filters: {
    // Events that may overlap the range: single events exactly; a series when it starts
    // before `to` (its exact occurrences are in events/occurrences).
    from: filter.custom<string>(DateTime, (from) => sql<SqlBool>`(r.rrule IS NOT NULL OR r.ends_at > ${from})`),
    to: filter.custom<string>(DateTime, (to) => sql<SqlBool>`r.starts_at < ${to}`),
    attendee: filter.custom<string>(Uuid, (id) => sql<SqlBool>`${id}::uuid = ANY(r.attendees)`),
    all_day: filter.equals('all_day', Type.Boolean()),
  },
  async write(values, _input, { trx, before }) {
    const checks = new FieldChecks();
    const starts = new Date((values.starts_at ?? before?.starts_at) as string | Date);
    const ends = new Date((values.ends_at ?? before?.ends_at) as string | Date);
    if (!(starts < ends)) checks.fail('ends_at', text('reason.after', { other: 'starts_at' }));
    if (typeof values.timezone === 'string' && !validTimeZone(values.timezone)) checks.fail('timezone', text('reason.time_zone_unknown'));
    const next = { ...values };
    const rrule = values.rrule === undefined ? (before?.rrule as string | null | undefined) : values.rrule;
    if (typeof rrule === 'string') {
      const parsed = checks.check(() => parseRecurrence(rrule));
      if (parsed?.options.until instanceof Date && parsed.options.until < starts) checks.fail('rrule', text('reason.rrule_until_before_start'));
      if (parsed && typeof values.rrule === 'string') next.rrule = parsed.rule;
    }
    checks.done();
    if (Array.isArray(values.attendees)) {
      const attendees = [...new Set(values.attendees as string[])];
      await checkUsers(trx, 'attendees', attendees);
      next.attendees = attendees;
    }
    return next;
  },
  routes: ({ service }) =>
    async (app) => {
      app.get(
        '/events/occurrences',
        {
          config: { access: { permission: 'events.read' } },
          schema: {
            tags: ['events'],
            summary: `Occurrences overlapping from..to, recurring events expanded (at most ${MAX_OCCURRENCES}), by start`,
            querystring: Type.Object(
              {
                ...RangeQuery,
                page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
                page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
                eventable_type: optional(TARGET_TYPE),
                eventable_id: optional(Uuid),
                attendee: optional(Uuid),
              },
              { additionalProperties: false },
            ),
            response: { 200: Type.Object({ items: Type.Array(OccurrenceSchema), total: Type.Integer(), page: Type.Integer(), page_size: Type.Integer() }), ...problems(400, 401, 403, 404) },
          },
        },
        async (request) => {
          const { page, page_size: pageSize, ...query } = request.query;
          const from = new Date(query.from);
          const to = new Date(query.to);
          checkRange(from, to);
          const tenant = requireTenant(request);
          const found: (Occurrence & { event: EventRow })[] = [];
          let work = 0;
          // Candidates come from the list (same visibility and filters), a page at a time.
          for (let p = 1; ; p++) {
            const batch = await service.list(tenant, { ...query, page: p, page_size: 100, sort: 'starts_at' } as ListQuery);
            for (const event of batch.items as unknown as EventRow[]) {
              const options = event.rrule ? parseRecurrence(event.rrule).options : undefined;
              if (options) work += expansionWork(options, event.starts_at, to);
              if (work > MAX_EXPANSION_WORK) throw DomainError.invalid('to', text('reason.expansion_too_far'));
              for (const o of occurrences(event, from, to, options)) found.push({ ...o, event });
              if (found.length > MAX_OCCURRENCES) throw DomainError.invalid('to', text('reason.too_many_occurrences', { max: MAX_OCCURRENCES }));
            }
            if (p * 100 >= batch.total) break;
          }
          found.sort((a, b) => a.starts_at.getTime() - b.starts_at.getTime() || a.event.id.localeCompare(b.event.id));
          const items = found.slice((page - 1) * pageSize, page * pageSize).map((o) => ({
            event_id: o.event.id,
            starts_at: o.starts_at,
            ends_at: o.ends_at,
            title: o.event.title,
            location: o.event.location,
            all_day: o.event.all_day,
            recurring: o.event.rrule !== null,
            eventable_type: o.event.eventable_type,
            eventable_id: o.event.eventable_id,
          }));
          return { items, total: found.length, page, page_size: pageSize };
        },
      );
    },
};
