import type { Kysely } from 'kysely';
import type { Change, ChangeListener } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { normalizeSlug, SLUG_PATTERN } from '../db/identifiers.js';
import { DomainError } from '../errors.js';

/** A resolved tenant: the only thing a tenant query can be built from (`tenantDb(db, ctx.schema)`). */
export interface TenantContext {
  readonly id: string;
  readonly slug: string;
  readonly schema: string;
  /** The registered name (shared.tenants.name), as mails address the tenant. */
  readonly name: string;
}

const tenantKey = (slug: string) => `tenant:${slug}`;

/** The slug of a path, normalized, or undefined when it cannot name a tenant. */
function validSlug(input: string): string | undefined {
  const slug = normalizeSlug(input);
  return SLUG_PATTERN.test(slug) ? slug : undefined;
}

/**
 * How long a resolved tenant is trusted. The registry (`shared.tenants`) belongs to
 * tenant-service, which tells this service nothing when it suspends a tenant: the tenant stops
 * resolving within this time (one indexed read per tenant and instance every 5 s).
 */
const TENANT_TTL_MS = 5_000;

/** Resolves `{tenant_slug}` of a route to a tenant whose schema is ready; cached, invalidated on change. */
export class TenantDirectory implements ChangeListener {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
  ) {}

  async resolve(slugInput: string): Promise<TenantContext> {
    const slug = validSlug(slugInput);
    if (slug === undefined) throw DomainError.notFound('tenant');
    // Unknown slugs are not cached: a tenant created a moment later must resolve at once.
    return this.local.load(tenantKey(slug), () => this.lookup(slug), TENANT_TTL_MS);
  }

  /** resolve without a promise: the tenant when it is cached, undefined otherwise. */
  cached(slugInput: string): TenantContext | undefined {
    const slug = validSlug(slugInput);
    return slug === undefined ? undefined : this.local.get<TenantContext>(tenantKey(slug));
  }

  private async lookup(slug: string): Promise<TenantContext> {
    const row = await this.db
      .withSchema('shared')
      .selectFrom('tenants as t')
      .innerJoin('tenant_schemas as s', 's.schema_name', 't.schema_name')
      .select(['t.id', 't.slug', 't.name', 't.schema_name', 't.status', 's.status as schema_status'])
      .where('t.slug', '=', slug)
      .executeTakeFirst();
    if (row?.status === 'active' && row.schema_status === 'failed') {
      throw new DomainError('tenant.quarantined');
    }
    if (row?.status === 'suspended' && row.schema_status === 'ready') throw new DomainError('tenant.suspended');
    const usable = row && row.schema_status === 'ready' && row.status === 'active';
    if (!usable) throw DomainError.notFound('tenant');
    return { id: row.id, slug: row.slug, schema: row.schema_name, name: row.name };
  }

  invalidate(slug: string): Promise<void> {
    return this.local.invalidate(tenantKey(slug));
  }

  /** A tenant suspended, resumed, restored or deleted resolves anew, here and on every instance (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    return change.kind === 'tenant' ? this.invalidate(tenant.slug) : undefined;
  }
}
