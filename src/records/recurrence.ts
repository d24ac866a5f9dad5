import rrule from 'rrule';
import { DomainError, type Text, text as msg } from '../errors.js';

const { RRule } = rrule;
export type RuleOptions = InstanceType<typeof RRule>['origOptions'];

/*
 * RFC 5545 recurrence rules, checked part by part before the `rrule` library expands them:
 * the library accepts values that can never match (BYMONTH=13) or roll over (an UNTIL in
 * month 13), and its expansion walks every period from the series start, synchronously.
 */

const FREQUENCIES = ['YEARLY', 'MONTHLY', 'WEEKLY', 'DAILY', 'HOURLY'] as const;
const WEEKDAYS = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'] as const;

/** Allowed values of each numeric list part: [min, max, zero allowed, negative allowed]. */
const NUMERIC_PARTS: Record<string, readonly [number, number, boolean]> = {
  BYSECOND: [0, 59, true],
  BYMINUTE: [0, 59, true],
  BYHOUR: [0, 23, true],
  BYMONTHDAY: [-31, 31, false],
  BYYEARDAY: [-366, 366, false],
  BYWEEKNO: [-53, 53, false],
  BYMONTH: [1, 12, false],
  BYSETPOS: [-366, 366, false],
};
const MAX_LIST = 60;

function invalid(reason: Text): DomainError {
  return DomainError.invalid('rrule', reason);
}

function integer(text: string, part: string, min: number, max: number, zero = true): number {
  if (!/^[+-]?\d{1,6}$/.test(text)) throw invalid(msg('reason.rrule_integers', { part }));
  const n = Number(text);
  if (n < min || n > max || (!zero && n === 0)) throw invalid(msg(zero ? 'reason.rrule_range' : 'reason.rrule_range_no_zero', { part, min, max }));
  return n;
}

function checkUntil(text: string): void {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?$/.exec(text);
  if (!m) throw invalid(msg('reason.rrule_until_format'));
  const [y, mo, d, h = 0, mi = 0, s = 0] = m.slice(1).map((v) => (v === undefined ? undefined : Number(v))) as number[];
  const date = new Date(Date.UTC(y!, mo! - 1, d, h, mi, s));
  if (y! < 1 || date.getUTCFullYear() !== y || date.getUTCMonth() !== mo! - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) throw invalid(msg('reason.rrule_until_date'));
}

/** Checks a rule (without DTSTART: the event's starts_at starts the series) and returns its normal form and options. */
export function parseRecurrence(text: string): { rule: string; options: RuleOptions } {
  const rule = text.trim().replace(/^RRULE:/i, '').toUpperCase();
  if (rule === '' || /[^A-Z0-9=;,+-]/.test(rule)) throw invalid(msg('reason.rrule_single'));
  const seen = new Set<string>();
  for (const part of rule.split(';')) {
    const [key, value, extra] = part.split('=');
    if (!key || value === undefined || value === '' || extra !== undefined) throw invalid(msg('reason.rrule_part', { part }));
    if (seen.has(key)) throw invalid(msg('reason.rrule_twice', { part: key }));
    seen.add(key);
    const items = value.split(',');
    if (items.length > MAX_LIST) throw invalid(msg('reason.rrule_list', { part: key, max: MAX_LIST }));
    if (key === 'FREQ') {
      if (!(FREQUENCIES as readonly string[]).includes(value)) throw invalid(msg('reason.rrule_values', { part: 'FREQ', values: FREQUENCIES.join(', ') }));
    } else if (key === 'INTERVAL') integer(value, key, 1, 1000);
    else if (key === 'COUNT') integer(value, key, 1, 100_000);
    else if (key === 'UNTIL') checkUntil(value);
    else if (key === 'WKST') {
      if (!(WEEKDAYS as readonly string[]).includes(value)) throw invalid(msg('reason.rrule_values', { part: 'WKST', values: WEEKDAYS.join(', ') }));
    } else if (key === 'BYDAY') {
      for (const item of items) {
        const m = /^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$/.exec(item);
        if (!m) throw invalid(msg('reason.rrule_byday'));
        if (m[1] !== undefined) integer(m[1], 'BYDAY', -53, 53, false);
      }
    } else if (NUMERIC_PARTS[key]) {
      const [min, max, zero] = NUMERIC_PARTS[key];
      for (const item of items) integer(item, key, min, max, zero);
    } else throw invalid(msg('reason.rrule_unknown_part', { part: key }));
  }
  if (!seen.has('FREQ')) throw invalid(msg('reason.rrule_freq'));
  if (seen.has('COUNT') && seen.has('UNTIL')) throw invalid(msg('reason.rrule_count_until'));
  let options: RuleOptions;
  try {
    options = RRule.parseString(rule);
    new RRule(options);
  } catch {
    throw invalid(msg('reason.rrule_invalid'));
  }
  return { rule, options };
}

const DAY = 86_400_000;
const HOUR = 3_600_000;

/**
 * About how many candidate instants the library walks to expand a series from its start up to
 * `to`: one per day (one per hour for HOURLY) over the span, divided by the interval, times the
 * time-of-day combinations (BYHOUR x BYMINUTE x BYSECOND).
 */
export function expansionWork(options: RuleOptions, startsAt: Date, to: Date): number {
  const end = Math.min(to.getTime(), options.until instanceof Date ? options.until.getTime() + DAY : Number.POSITIVE_INFINITY);
  const span = Math.max(0, end - startsAt.getTime());
  const step = options.freq === RRule.HOURLY ? HOUR : DAY;
  const size = (v: unknown) => (Array.isArray(v) ? v.length : 1);
  const times = size(options.byhour) * size(options.byminute) * size(options.bysecond);
  return (span / step / Math.max(1, options.interval ?? 1)) * times;
}

export function ruleFor(options: RuleOptions, startsAt: Date): InstanceType<typeof RRule> {
  return new RRule({ ...options, dtstart: startsAt });
}
