import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorFrom, requireTenant } from '../http/context.js';
import { pageOf, problems } from '../http/schemas.js';
import { SEARCH_TYPES } from './query.js';
import type { SearchService } from './service.js';

export const SearchQuery = Type.Object(
  {
    q: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: '\\S',
      examples: ['jonathon smith'],
      description: 'What to look for: words (the last one also as a prefix), a name with a typo, an email address or a prefix of one. Whitespace only is a 400.',
    }),
    types: Type.Optional(
      Type.String({
        maxLength: 200,
        examples: ['users,notes'],
        description: `Comma-separated types to search, of ${SEARCH_TYPES.join(', ')}. Omitted: every type the caller may read (\`<type>.read\`); naming one it may not read is a 403.`,
      }),
    ),
    page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
    page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  },
  { additionalProperties: false },
);

const SearchHit = Type.Object(
  {
    type: Type.Unsafe<(typeof SEARCH_TYPES)[number]>({ type: 'string', enum: [...SEARCH_TYPES], description: 'The type of the row (a name `types` accepts); GET <type>/{id} reads it' }),
    id: Type.String({ format: 'uuid' }),
    title: Type.String({ examples: ['Jonathan Smyth'], description: 'Plain text (not escaped): a user\'s name (or username, or email), a record\'s title or file name' }),
    snippet: Type.String({
      examples: ['<mark>Jonathan</mark> <mark>Smyth</mark> · jonathan.smyth@example.com · jsmyth'],
      description: 'HTML, safe to insert as is: the matching text escaped (&, <, >, ", \'), matches wrapped in <mark>...</mark>, fragments joined by " … "',
    }),
    score: Type.Number({ examples: [1.42], description: 'Relevance, higher first: an exact email or username match 2, a full-text match 1 plus half its rank, plus half the trigram similarity (docs/SEARCH.md)' }),
  },
  { $id: 'SearchHit' },
);

/** `search`: one query over the tenant's users, teams and records. */
export function searchRoutes(search: SearchService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/search',
      {
        // Authenticated; each type is then checked against `<type>.read` (SearchService.readableTypes).
        config: { access: 'self' },
        schema: {
          tags: ['search'],
          summary: 'Search users, teams and records: full-text and trigram similarity, best first, with highlighted snippets',
          description:
            'Finds rows of the types the caller may read by the words they hold (the tenant\'s `search.language`; the last word of `q` also as a prefix), by a name or email close to `q` (typos), and by an exact email or username (ranked first). Deleted rows, and records whose target is deleted, are left out. `snippet` is HTML: escaped text with matches in <mark>. docs/SEARCH.md has the details.',
          querystring: SearchQuery,
          response: { 200: pageOf(SearchHit), ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => search.search(requireTenant(request), actorFrom(request), request.query),
    );
  };
}
