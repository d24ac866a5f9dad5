import type { Kysely } from 'kysely';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';

export interface AuditQuery {
  page: number;
  page_size: number;
  actor_user_id?: string;
  entity_type?: string;
  entity_id?: string;
  action?: string;
  from?: string;
  to?: string;
}

/** The audit trail, read only: rows are written with their changes (audit.ts) and never altered. */
export class AuditService {
  constructor(private readonly db: Kysely<PlatformDatabase>) {}

  /** A page of the trail, newest first, filtered by actor, entity, action and time range. */
  async list(tenant: TenantContext, q: AuditQuery) {
    if (q.from && q.to && new Date(q.from) > new Date(q.to)) throw DomainError.invalid('from', 'must not be after to');
    let base = tenantDb(this.db, tenant.schema).selectFrom('audit_logs');
    if (q.actor_user_id) base = base.where('actor_user_id', '=', q.actor_user_id);
    if (q.entity_type) base = base.where('entity_type', '=', q.entity_type);
    if (q.entity_id) base = base.where('entity_id', '=', q.entity_id);
    if (q.action) base = base.where('action', '=', q.action);
    if (q.from) base = base.where('created_at', '>=', new Date(q.from));
    if (q.to) base = base.where('created_at', '<', new Date(q.to));
    const [items, total] = await Promise.all([
      base.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.page_size).offset((q.page - 1) * q.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: items.map(({ updated_at: _u, ...e }) => e), total: Number(total.n), page: q.page, page_size: q.page_size };
  }
}
