import { Type, type TProperties } from 'typebox';

/**
 * Query schema of a list route: page, page_size (max 100), search, sort from an allowlist
 * (`field` ascending, `-field` descending; anything else is a 400), plus the route's filters.
 */
export function listQuery<P extends TProperties>(sortable: readonly string[], filters: P) {
  const sorts = sortable.flatMap((f) => [f, `-${f}`]);
  return Type.Object(
    {
      page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
      page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
      search: Type.Optional(Type.String({ maxLength: 200, description: 'Case-insensitive text search' })),
      sort: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: sorts, description: `One of ${sorts.join(', ')}` })),
      ...filters,
    },
    { additionalProperties: false },
  );
}
