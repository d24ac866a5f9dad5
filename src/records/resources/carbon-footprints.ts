import { sql, type Kysely, type RawBuilder } from 'kysely';
import { Type, type Static } from 'typebox';
import type { TenantDatabase } from '../../db/types.js';
import { DomainError, text } from '../../errors.js';
import { problems } from '../../http/schemas.js';
import { requireTenant } from '../../http/context.js';
import { DateOnly, nullable, oneOf, optional, partial, Text } from '../fields.js';
import { filter, type RecordSpec, type Row } from '../resource.js';

const Scope = Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(3)], { description: 'GHG Protocol scope' });
/** numeric(20, 6): below 10^14, six decimals (more are rounded). */
const NUMERIC_LIMIT = 1e14;
const Amount = Type.Number({ minimum: 0, exclusiveMaximum: NUMERIC_LIMIT });
const Label = (max: number) => Type.String({ minLength: 1, maxLength: max, pattern: '\\S' });

const create = {
  scope: optional(nullable(Scope)),
  category: optional(nullable(Label(100))),
  activity: Label(200),
  quantity: Amount,
  unit: Label(32),
  emission_factor: optional(nullable(Amount)),
  co2e_kg: optional(Amount),
  period_start: DateOnly,
  period_end: DateOnly,
  source: optional(nullable(Label(500))),
  notes: optional(nullable(Text)),
};

const NUMERIC = ['quantity', 'emission_factor', 'co2e_kg'] as const;

const GROUPS = ['scope', 'category', 'month'] as const;
const AggregateQuery = Type.Object(
  { group_by: oneOf(GROUPS), from: optional(DateOnly), to: optional(DateOnly), scope: optional(Scope), category: optional(Label(100)) },
  { additionalProperties: false },
);
const Aggregate = Type.Object({
  group_by: oneOf(GROUPS),
  from: nullable(Type.String()),
  to: nullable(Type.String()),
  total_co2e_kg: Type.Number(),
  count: Type.Integer(),
  items: Type.Array(Type.Object({ key: nullable(Type.String({ description: 'The scope ("1".."3"), the category, or the month (YYYY-MM); null: none given' })), co2e_kg: Type.Number(), count: Type.Integer() })),
});

function groupKey(group: (typeof GROUPS)[number]): RawBuilder<string | null> {
  if (group === 'scope') return sql<string | null>`scope::text`;
  if (group === 'category') return sql<string | null>`category`;
  return sql<string>`to_char(period_start, 'YYYY-MM')`;
}

/**
 * Carbon footprints: scope 1/2/3, category, activity, quantity and unit, and co2e_kg, which is
 * computed (quantity x emission_factor, exactly, in the database) when a factor is given.
 */
/** Sums of co2e_kg by scope, category or month over live footprints whose period starts within from..to. */
async function aggregate(db: Kysely<TenantDatabase>, query: Static<typeof AggregateQuery>) {
  const { group_by: group, from, to, scope, category } = query;
  if (from && to && from > to) throw DomainError.invalid('to', text('reason.not_before', { other: 'from' }));
  const key = groupKey(group);
  let q = db
    .selectFrom('carbon_footprints')
    .select([key.as('key'), sql<string>`sum(co2e_kg)::text`.as('co2e_kg'), sql<string>`count(*)`.as('n')])
    .where('deleted_at', 'is', null)
    .groupBy(key)
    .orderBy(key);
  if (from) q = q.where('period_start', '>=', from);
  if (to) q = q.where('period_start', '<=', to);
  if (scope) q = q.where('scope', '=', scope);
  if (category) q = q.where('category', '=', category);
  const rows = await q.execute();
  const items = rows.map((r) => ({ key: r.key, co2e_kg: Number(r.co2e_kg), count: Number(r.n) }));
  const total = rows.reduce((sum, r) => sum + Number(r.co2e_kg), 0);
  return { group_by: group, from: from ?? null, to: to ?? null, total_co2e_kg: Math.round(total * 1e6) / 1e6, count: items.reduce((n, i) => n + i.count, 0), items };
}

export const carbonFootprints: RecordSpec = {
  table: 'carbon_footprints',
  path: 'carbon-footprints',
  label: 'carbon footprint',
  schemaId: 'CarbonFootprint',
  columns: ['scope', 'category', 'activity', 'quantity', 'unit', 'emission_factor', 'co2e_kg', 'period_start', 'period_end', 'source', 'notes'],
  fields: {
    scope: nullable(Type.Integer()),
    category: nullable(Type.String()),
    activity: Type.String(),
    quantity: Type.Number(),
    unit: Type.String(),
    emission_factor: nullable(Type.Number()),
    co2e_kg: Type.Number(),
    period_start: DateOnly,
    period_end: DateOnly,
    source: nullable(Type.String()),
    notes: nullable(Type.String()),
  },
  create,
  update: partial(create),
  sorts: ['period_start', 'co2e_kg', 'created_at', 'updated_at'],
  defaultSort: { column: 'period_start', direction: 'desc' },
  search: ['activity', 'category', 'notes'],
  filters: {
    scope: filter.equals('scope', Scope),
    category: filter.equals('category', Label(100)),
    period_from: filter.atLeast('period_start', DateOnly),
    period_to: filter.atMost('period_start', DateOnly),
  },
  write(values, _input, { before }) {
    const start = (values.period_start ?? before?.period_start) as string;
    const end = (values.period_end ?? before?.period_end) as string;
    if (start > end) throw DomainError.invalid('period_end', text('reason.not_before', { other: 'period_start' }));
    const factor = values.emission_factor === undefined ? before?.emission_factor : values.emission_factor;
    const quantity = values.quantity ?? before?.quantity;
    const factorChanged = values.emission_factor !== undefined || values.quantity !== undefined || !before;
    if (factor !== null && factor !== undefined) {
      if (values.co2e_kg !== undefined) throw DomainError.invalid('co2e_kg', text('reason.co2e_computed'));
      if (Number(quantity) * Number(factor) >= NUMERIC_LIMIT) throw DomainError.invalid('emission_factor', text('reason.co2e_too_large'));
      return factorChanged ? { ...values, co2e_kg: sql`round(${String(quantity)}::numeric * ${String(factor)}::numeric, 6)` } : values;
    }
    if (!before && values.co2e_kg === undefined) throw DomainError.invalid('co2e_kg', text('reason.co2e_required'));
    return values;
  },
  present(row: Row) {
    const view: Record<string, unknown> = { ...row };
    for (const c of NUMERIC) view[c] = row[c] === null ? null : Number(row[c]);
    return view;
  },
  routes: ({ service }) =>
    async (app) => {
      app.get(
        '/carbon-footprints/aggregate',
        {
          config: { access: { permission: 'carbon_footprints.read' } },
          schema: {
            tags: ['carbon-footprints'],
            summary: 'Sum of co2e_kg by scope, category or month of period_start, over footprints whose period starts within from..to',
            querystring: AggregateQuery,
            response: { 200: Aggregate, ...problems(400, 401, 403, 404) },
          },
        },
        async (request) => service.read(requireTenant(request), (db) => aggregate(db, request.query)),
      );
    },
};
