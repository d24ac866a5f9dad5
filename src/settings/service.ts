import { sql, type Kysely } from 'kysely';
import { accessGuard, actorOf } from '../access/guard.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import { transact } from '../db/work.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { checkVersion, DomainError, type Text, text } from '../errors.js';
import { likePattern } from '../db/listing.js';
import { applySearchLanguage, checkSearchLanguage, SEARCH_LANGUAGE_KEY } from '../search/language.js';
import type { TenantContext } from '../tenancy/directory.js';
import type { SettingType, SettingValidation } from './defaults.js';

const COLUMNS = ['id', 'key', 'value', 'type', 'category', 'description', 'is_public', 'validation', 'version', 'updated_at'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks a value against its setting's type and constraints; the reason names the rule. */
export function checkSettingValue(key: string, type: SettingType, validation: SettingValidation, value: unknown): void {
  const fail = (reason: Text) => {
    throw DomainError.invalid('value', reason);
  };
  if (value === null || value === undefined) fail(text('reason.required'));
  if (type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(text('reason.setting_number', { key }));
    const n = value as number;
    if (validation.integer && !Number.isInteger(n)) fail(text('reason.integer'));
    if (validation.min !== undefined && n < validation.min) fail(text('reason.minimum', { limit: validation.min }));
    if (validation.max !== undefined && n > validation.max) fail(text('reason.maximum', { limit: validation.max }));
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean') fail(text('reason.setting_boolean', { key }));
  } else if (type === 'string') {
    if (typeof value !== 'string') fail(text('reason.setting_string', { key }));
    const s = value as string;
    if (s.length > 1000) fail(text('reason.max_length', { limit: 1000 }));
    if (validation.allowed && !validation.allowed.includes(s)) fail(text('reason.one_of', { values: validation.allowed.join(', ') }));
    if (key.startsWith('timezone.') && !Intl.supportedValuesOf('timeZone').includes(s)) fail(text('reason.time_zone'));
  } else if (JSON.stringify(value).length > 65_536) {
    fail(text('reason.setting_json_size'));
  }
}

/** Settings that decide how every user signs in and stays signed in: changed only by a user who holds everything. */
const TENANT_WIDE = /^(auth|password|session|lockout)\./;

/** A tenant's settings: typed values the service reads its policies from. */
export class SettingsService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly changes: Changes,
  ) {}

  async list(tenant: TenantContext, query: { page: number; page_size: number; search?: string; category?: string; sort?: string }) {
    const db = tenantDb(this.db, tenant.schema);
    let base = db.selectFrom('settings');
    if (query.search) base = base.where('key', 'ilike', likePattern(query.search));
    if (query.category) base = base.where('category', '=', query.category);
    const descending = query.sort?.startsWith('-') ?? false;
    const column = (query.sort?.replace(/^-/, '') ?? 'key') as 'key' | 'category' | 'updated_at';
    const [items, total] = await Promise.all([
      base.select(COLUMNS).orderBy(column, descending ? 'desc' : 'asc').orderBy('key').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  async get(tenant: TenantContext, idOrKey: string) {
    return this.one(tenantDb(this.db, tenant.schema), idOrKey);
  }

  async update(tenant: TenantContext, idOrKey: string, value: unknown, expected: number | undefined, actor: AuditActor) {
    return transact(this.db, this.changes, tenant, async ({ trx, changed }) => {
      const before = await this.one(trx, idOrKey, true);
      checkVersion(expected, before.version);
      if (TENANT_WIDE.test(before.key)) await accessGuard.checkTenantWideChange(trx, actorOf(actor), before.key);
      checkSettingValue(before.key, before.type as SettingType, before.validation as SettingValidation, value);
      if (before.key === SEARCH_LANGUAGE_KEY) await checkSearchLanguage(trx, value);
      const after = await trx
        .updateTable('settings')
        .set({ value: JSON.stringify(value), updated_by: actor.actorUserId, updated_at: new Date(), version: sql`version + 1` })
        .where('id', '=', before.id)
        .returning(COLUMNS)
        .executeTakeFirstOrThrow();
      // Every searchable row follows the new language in this transaction (docs/SEARCH.md).
      if (before.key === SEARCH_LANGUAGE_KEY && after.value !== before.value) await applySearchLanguage(trx, tenant.schema);
      await writeAudit(trx, actor, { action: 'settings.update', entityType: 'settings', entityId: before.id, before: { key: before.key, value: before.value }, after: { key: after.key, value: after.value } });
      changed({ kind: 'settings' });
      return after;
    });
  }

  private async one(db: Kysely<TenantDatabase>, idOrKey: string, forUpdate = false) {
    let q = db.selectFrom('settings').select(COLUMNS).where(UUID.test(idOrKey) ? 'id' : 'key', '=', idOrKey);
    if (forUpdate) q = q.forUpdate();
    const setting = await q.executeTakeFirst();
    if (!setting) throw DomainError.notFound('setting');
    return setting;
  }
}
