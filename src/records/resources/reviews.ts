import { sql, type Kysely } from 'kysely';
import { Type, type Static } from 'typebox';
import type { TenantDatabase } from '../../db/types.js';
import { DomainError } from '../../errors.js';
import { problems } from '../../http/schemas.js';
import { requireTenant } from '../../http/context.js';
import { nullable, oneOf, optional, Text, Timestamp, Uuid } from '../fields.js';
import { filter, TARGET_TYPE, type RecordSpec } from '../resource.js';

const STATUSES = ['pending', 'approved', 'rejected'] as const;
const Status = oneOf(STATUSES);
const Rating = Type.Integer({ minimum: 1, maximum: 5, examples: [4] });
const ReviewTitle = Type.String({ minLength: 1, maxLength: 500, pattern: '\\S' });

const create = {
  rating: Rating,
  title: optional(nullable(ReviewTitle)),
  body: optional(nullable(Text)),
};

const AggregateQuery = Type.Object(
  {
    reviewable_type: TARGET_TYPE,
    reviewable_id: Uuid,
    status: optional(Status),
  },
  { additionalProperties: false },
);
const Aggregate = Type.Object({
  reviewable_type: Type.String(),
  reviewable_id: Uuid,
  status: nullable(Status),
  count: Type.Integer(),
  average_rating: nullable(Type.Number({ description: 'Mean rating, 2 decimals; null without reviews' })),
  by_rating: Type.Object({ 1: Type.Integer(), 2: Type.Integer(), 3: Type.Integer(), 4: Type.Integer(), 5: Type.Integer() }),
});

/** Reviews: a 1-5 rating with title and body, moderated (pending, approved, rejected). */
/** Average rating and count by rating of one live target's live reviews. */
async function aggregate(db: Kysely<TenantDatabase>, schema: string, query: Static<typeof AggregateQuery>) {
  const { reviewable_type: type, reviewable_id: id, status } = query;
  let q = db
    .selectFrom('reviews')
    .select(['rating', sql<string>`count(*)`.as('n')])
    .where('reviewable_type', '=', type)
    .where('reviewable_id', '=', id)
    .where('deleted_at', 'is', null)
    // Reviews of a deleted target are hidden, as in the list.
    .where(sql<boolean>`EXISTS (SELECT 1 FROM ${sql.table(`${schema}.${type}`)} t WHERE t.id = ${id} AND t.deleted_at IS NULL)`)
    .groupBy('rating');
  if (status) q = q.where('status', '=', status);
  const rows = await q.execute();
  const byRating = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 } as Record<1 | 2 | 3 | 4 | 5, number>;
  for (const row of rows) byRating[row.rating as 1] = Number(row.n);
  const count = Object.values(byRating).reduce((a, b) => a + b, 0);
  const sum = Object.entries(byRating).reduce((a, [rating, n]) => a + Number(rating) * n, 0);
  return { reviewable_type: type, reviewable_id: id, status: status ?? null, count, average_rating: count ? Math.round((sum / count) * 100) / 100 : null, by_rating: byRating };
}

export const reviews: RecordSpec = {
  table: 'reviews',
  path: 'reviews',
  label: 'review',
  schemaId: 'Review',
  target: 'reviewable',
  columns: ['rating', 'title', 'body', 'status', 'moderated_by', 'moderated_at'],
  fields: {
    rating: Type.Integer(),
    title: nullable(Type.String()),
    body: nullable(Type.String()),
    status: Status,
    moderated_by: nullable(Uuid),
    moderated_at: nullable(Timestamp),
  },
  create,
  update: { rating: optional(Rating), title: optional(nullable(ReviewTitle)), body: optional(nullable(Text)), status: optional(Status) },
  sorts: ['created_at', 'updated_at', 'rating'],
  defaultSort: { column: 'created_at', direction: 'desc' },
  search: ['title', 'body'],
  filters: {
    status: filter.equals('status', Status),
    rating: filter.equals('rating', Rating),
  },
  write(values, _input, { before, actor, now }) {
    const own = { ...values };
    delete own.moderated_by;
    delete own.moderated_at;
    if (own.status === undefined || own.status === (before?.status ?? 'pending')) return own;
    // A moderation decision records who made it and when; nobody moderates their own review.
    if (before?.created_by === actor.actorUserId) throw new DomainError('review.self_moderation');
    return { ...own, moderated_by: actor.actorUserId, moderated_at: now };
  },
  routes: ({ service }) =>
    async (app) => {
      app.get(
        '/reviews/aggregate',
        {
          config: { access: { permission: 'reviews.read' } },
          schema: {
            tags: ['reviews'],
            summary: 'Average rating and count by rating of one target (optionally of one moderation status)',
            querystring: AggregateQuery,
            response: { 200: Aggregate, ...problems(400, 401, 403, 404) },
          },
        },
        async (request) => service.read(requireTenant(request), (db, tenant) => aggregate(db, tenant.schema, request.query)),
      );
    },
};
