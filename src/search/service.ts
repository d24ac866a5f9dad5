import { sql, type Kysely } from 'kysely';
import type { AccessService } from '../access/service.js';
import type { AuditActor } from '../audit/audit.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { StatementCache } from '../db/statements.js';
import { DomainError, text } from '../errors.js';
import type { RecordService } from '../records/resource.js';
import type { TenantContext } from '../tenancy/directory.js';
import { queryWords, snippetsFor } from './highlight.js';
import { SEARCH_TYPES, searchStatement, tsqueryOf, type SearchSource, type SearchType, type SearchValues } from './query.js';

export interface SearchQuery {
  readonly q: string;
  /** Comma-separated type names; absent: every type the caller may read. */
  readonly types?: string;
  readonly page: number;
  readonly page_size: number;
}

export interface SearchHit {
  readonly type: SearchType;
  readonly id: string;
  readonly title: string;
  /** HTML: the text escaped, matches in <mark>. */
  readonly snippet: string;
  readonly score: number;
}

const isSearchType = (name: string): name is SearchType => (SEARCH_TYPES as readonly string[]).includes(name);

/** The types a query names (400 naming `querystring.types` for an unknown or empty one); undefined when it names none. */
export function requestedTypes(types: string | undefined): SearchType[] | undefined {
  if (types === undefined) return undefined;
  const names = types.split(',').map((t) => t.trim());
  const unknown = names.filter((t) => !isSearchType(t));
  if (unknown.length > 0) throw DomainError.invalid('querystring.types', text('reason.search_types', { types: unknown.map((t) => (t === '' ? '""' : t)).join(', '), known: SEARCH_TYPES.join(', ') }));
  return SEARCH_TYPES.filter((t) => names.includes(t));
}

/**
 * Full-text and trigram search over the tenant's users, teams and records (docs/SEARCH.md): the
 * types the caller may read, the rows their lists would show, best first.
 */
export class SearchService {
  private readonly statements = new StatementCache();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly access: AccessService,
    private readonly records: readonly RecordService[],
  ) {}

  async search(tenant: TenantContext, actor: AuditActor, query: SearchQuery): Promise<{ items: SearchHit[]; total: number; page: number; page_size: number }> {
    if (query.q.trim() === '') throw DomainError.invalid('querystring.q', text('reason.search_empty'));
    const types = await this.readableTypes(tenant, actor, requestedTypes(query.types));
    const words = queryWords(query.q);
    const db = tenantDb(this.db, tenant.schema);
    const values: SearchValues = { tsquery: tsqueryOf(words), q: query.q.trim(), limit: query.page_size, offset: (query.page - 1) * query.page_size };
    const { rows } = await this.statements.run(db, `search:${tenant.schema}:${types.join(',')}`, values, (v) => ({
      compile: () => searchStatement(tenant.schema, searchSources(this.records, tenant.schema, types), v).compile(db),
    }));
    const snippet = snippetsFor(words);
    const items = rows.flatMap((r) => (r.type === null || r.id === null ? [] : [{ type: r.type, id: r.id, title: r.title ?? '', snippet: snippet(r.headline ?? ''), score: r.score ?? 0 }]));
    return { items, total: rows[0]?.total ?? 0, page: query.page, page_size: query.page_size };
  }

  /**
   * The types searched: those asked for, each of which the caller must hold `<type>.read` for
   * (403 naming `querystring.types` otherwise), or, when none is asked for, every type it holds
   * that for (403 when it holds it for none). The same rule as every route's (AccessService.holds);
   * a refusal is audited as a route's is.
   */
  async readableTypes(tenant: TenantContext, actor: AuditActor, requested: readonly SearchType[] | undefined): Promise<SearchType[]> {
    if (!actor.actorUserId) throw new DomainError('auth.credentials_required');
    const caller = { userId: actor.actorUserId, scope: actor.scope ?? null };
    const candidates = requested ?? SEARCH_TYPES;
    const held = await Promise.all(candidates.map((type) => this.access.holds(tenant, caller, `${type}.read`)));
    const readable = candidates.filter((_, i) => held[i]);
    const refused = requested ? candidates.filter((_, i) => !held[i]) : readable.length === 0 ? candidates : [];
    if (refused.length > 0) {
      const permissions = refused.map((t) => `${t}.read`);
      await this.access.refused(tenant, actor, permissions.join(','), { method: 'GET', route: 'search' });
      const missing = permissions.join(', ');
      throw new DomainError('permission.denied', text('detail.search_denied', { permissions: missing }), requested ? [{ field: 'querystring.types', reasons: [text('reason.search_types_denied', { types: refused.join(', '), permissions: missing })] }] : []);
    }
    return readable;
  }
}

/** Each type's rows as its list shows them: users and teams live, records by their service's rule (RecordService.listed). */
export function searchSources(records: readonly RecordService[], schema: string, types: readonly SearchType[]): SearchSource[] {
  return types.map((type) => {
    const service = records.find((r) => r.spec.table === type);
    return { type, listed: service ? service.listed(schema, true) : sql`r.deleted_at IS NULL` };
  });
}
