import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { PlatformDatabase } from '../db/platform-types.js';
import { checkSlug, normalizeSlug, SLUG_PATTERN } from '../db/identifiers.js';
import { likePattern } from '../db/listing.js';
import { DomainError, FieldChecks, text } from '../errors.js';
import { prepareFirstAdmin, type AdminInput } from './first-admin.js';
import type { MigrateAllOptions, MigrateAllResult, MigrationState, MigrationStates, ProvisionHook, ProvisionResult, SchemaManager } from './schema-manager.js';

export interface TenantView {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
  readonly schema_name: string;
  /** State of the tenant's schema: initializing, ready, failed, or absent before initialization. */
  readonly status: string;
  /** The registry's own status (tenant-service's: active, suspended, ...). */
  readonly tenant_status: string;
  readonly schema_version: number;
  readonly last_error: string | null;
  readonly created_at: Date;
  readonly updated_at: Date;
}

export interface InitializeResult {
  readonly tenant_id: string;
  readonly schema_name: string;
  readonly status: 'ready';
  readonly schema_version: number;
  readonly tables: string[];
  readonly created_tables: string[];
  readonly admin_user_id: string | null;
  readonly duration_ms: number;
}

export interface Page<T> {
  readonly items: T[];
  readonly total: number;
  readonly page: number;
  readonly page_size: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkName(input: string): string {
  const name = input.trim();
  if (name.length < 1 || name.length > 200) throw DomainError.invalid('name', text('reason.length_between', { min: 1, max: 200 }));
  return name;
}

/** Registers tenants in `shared.tenants` and provisions their schemas; the API and the CLI both call it. */
export class TenantService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly schemas: SchemaManager,
  ) {}

  async create(input: { slug: string; name?: string; admin?: AdminInput }): Promise<TenantView & { admin_user_id: string | null }> {
    const checks = new FieldChecks();
    const slug = checks.check(() => checkSlug(input.slug))!;
    // The name defaults to the slug (refused once, under slug, when the slug is bad).
    const name = input.name === undefined ? slug! : checks.check(() => checkName(input.name!))!;
    let adminUserId: string | null = null;
    // The first admin's fields are checked with the tenant's, before its password is hashed.
    const hook = input.admin ? await prepareFirstAdmin(input.admin, (id) => (adminUserId = id), checks) : undefined;
    checks.done();

    const schemaName = `tenant_${slug}`;
    const exists = await this.shared()
      .selectFrom('tenants')
      .select('id')
      .where((eb) => eb.or([eb('slug', '=', slug), eb('schema_name', '=', schemaName)]))
      .executeTakeFirst();
    if (exists) throw DomainError.conflict('tenant.slug_taken', text('detail.slug_taken', { slug }));
    const tenant = await this.shared()
      .insertInto('tenants')
      .values({ slug, name, schema_name: schemaName })
      .returning('id')
      .executeTakeFirstOrThrow();
    await this.schemas.initializeTenantSchema(tenant.id, schemaName, hook);
    void this.schemas.replenishSpares(); // in the background: the next tenant finds a spare
    return { ...(await this.get(tenant.id)), admin_user_id: adminUserId };
  }

  /** Tenants oldest first; `search` matches slug or name (case-insensitive), `status` the registry status. */
  async list(options: { page: number; page_size: number; search?: string; status?: string }): Promise<Page<TenantView>> {
    const match = (eb: ExpressionBuilder<{ t: PlatformDatabase['tenants'] }, 't'>) => {
      const pattern = options.search ? likePattern(options.search) : undefined;
      return eb.and([...(pattern ? [eb.or([eb('t.slug', 'ilike', pattern), eb('t.name', 'ilike', pattern)])] : []), ...(options.status ? [eb('t.status', '=', options.status)] : [])]);
    };
    const [items, total] = await Promise.all([
      this.views().where(match).orderBy('t.created_at', 'asc').orderBy('t.slug').limit(options.page_size).offset((options.page - 1) * options.page_size).execute(),
      this.shared().selectFrom('tenants as t').where(match).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(total.n), page: options.page, page_size: options.page_size };
  }

  /** A tenant by its id or, as operators type it, by its slug. */
  async get(idOrSlug: string): Promise<TenantView> {
    if (!UUID.test(idOrSlug)) {
      if (!SLUG_PATTERN.test(normalizeSlug(idOrSlug))) throw DomainError.invalid('tenant_id', text('reason.tenant_id'));
      return this.getBySlug(idOrSlug);
    }
    const tenant = await this.views().where('t.id', '=', idOrSlug).executeTakeFirst();
    if (!tenant) throw DomainError.notFound('tenant');
    return tenant;
  }

  async getBySlug(slug: string): Promise<TenantView> {
    const tenant = await this.views().where('t.slug', '=', normalizeSlug(slug)).executeTakeFirst();
    if (!tenant) throw DomainError.notFound('tenant', text('detail.tenant_named_not_found', { slug }));
    return tenant;
  }

  /** Creates or completes the tenant's schema; idempotent. */
  async initialize(tenantId: string, admin?: AdminInput): Promise<InitializeResult> {
    const tenant = await this.get(tenantId);
    let adminUserId: string | null = null;
    const hook: ProvisionHook | undefined = admin ? await prepareFirstAdmin(admin, (id) => (adminUserId = id)) : undefined;
    const result = await this.schemas.initializeTenantSchema(tenant.id, tenant.schema_name, hook);
    return {
      tenant_id: tenant.id,
      schema_name: result.schema_name,
      status: 'ready',
      schema_version: result.schema_version,
      tables: result.tables,
      created_tables: result.created_tables,
      admin_user_id: adminUserId,
      duration_ms: result.duration_ms,
    };
  }

  async migrate(slug: string): Promise<ProvisionResult> {
    const tenant = await this.getBySlug(slug);
    return this.schemas.initializeTenantSchema(tenant.id, tenant.schema_name);
  }

  migrateAll(options: MigrateAllOptions): Promise<MigrateAllResult> {
    return this.schemas.migrateAll(options);
  }

  migrationStates(query: { state?: MigrationState; page: number; page_size: number }): Promise<MigrationStates> {
    return this.schemas.migrationStates(query);
  }

  migrationSummary(): Promise<Record<MigrationState, number>> {
    return this.schemas.migrationSummary();
  }

  async count(): Promise<number> {
    const row = await this.shared().selectFrom('tenants').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  private shared() {
    return this.db.withSchema('shared');
  }

  private views() {
    return this.shared()
      .selectFrom('tenants as t')
      .leftJoin('tenant_schemas as s', 's.schema_name', 't.schema_name')
      .select([
        't.id',
        't.slug',
        't.name',
        't.schema_name',
        't.status as tenant_status',
        sql<string>`COALESCE(s.status, 'absent')`.as('status'),
        sql<number>`COALESCE(s.version, 0)`.as('schema_version'),
        's.last_error',
        't.created_at',
        't.updated_at',
      ]);
  }
}
