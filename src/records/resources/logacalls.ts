import { sql, type SqlBool } from 'kysely';
import { Type } from 'typebox';
import { DomainError, text } from '../../errors.js';
import { nullable, oneOf, optional, partial, Text, Timestamp } from '../fields.js';
import { filter, type RecordSpec } from '../resource.js';

const DIRECTIONS = ['inbound', 'outbound'] as const;
const OUTCOMES = ['answered', 'no_answer', 'busy', 'voicemail', 'failed', 'cancelled'] as const;
const E164 = /^\+[1-9][0-9]{1,14}$/;

/** `+1 (415) 555-0100` -> `+14155550100`: spaces, dots, dashes and brackets are dropped, then E.164 is required. */
export function toE164(value: string, field = 'phone_number'): string {
  const compact = value.replace(/[\s().-]/g, '');
  if (!E164.test(compact)) throw DomainError.invalid(field, text('reason.e164'));
  return compact;
}

const Direction = oneOf(DIRECTIONS);
const Outcome = oneOf(OUTCOMES);
const Phone = Type.String({ minLength: 1, maxLength: 40, examples: ['+14155550100'] });

const create = {
  direction: Direction,
  phone_number: Phone,
  called_at: Timestamp,
  duration_seconds: optional(nullable(Type.Integer({ minimum: 0, maximum: 1_000_000 }))),
  outcome: optional(nullable(Outcome)),
  notes: optional(nullable(Text)),
};

/** Call logs: direction, an E.164 number, when, how long, the outcome and notes. */
export const logacalls: RecordSpec = {
  table: 'logacalls',
  path: 'logacalls',
  label: 'call log',
  schemaId: 'Logacall',
  target: 'logacallable',
  columns: ['direction', 'phone_number', 'called_at', 'duration_seconds', 'outcome', 'notes'],
  fields: {
    direction: Direction,
    phone_number: Type.String(),
    called_at: Timestamp,
    duration_seconds: nullable(Type.Integer()),
    outcome: nullable(Outcome),
    notes: nullable(Type.String()),
  },
  create,
  update: partial(create),
  sorts: ['called_at', 'duration_seconds', 'created_at'],
  defaultSort: { column: 'called_at', direction: 'desc' },
  search: ['phone_number', 'notes'],
  filters: {
    direction: filter.equals('direction', Direction),
    outcome: filter.equals('outcome', Outcome),
    phone_number: filter.custom<string>(Phone, (value) => sql<SqlBool>`r.phone_number = ${toE164(value)}`),
    called_from: filter.atLeast('called_at'),
    called_to: filter.atMost('called_at'),
  },
  write(values) {
    return typeof values.phone_number === 'string' ? { ...values, phone_number: toE164(values.phone_number) } : values;
  },
};
