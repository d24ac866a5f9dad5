import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import { PERMISSION_CATALOGUE } from '../access/catalogue.js';
import { missingForGrant } from '../access/grants.js';
import type { AccessService } from '../access/service.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Change, Changes } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { transact, type Work } from '../db/work.js';
import { DomainError, FieldChecks, text } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';
import { sha256 } from './tokens.js';

/** `ssk_<prefix>_<secret>`: the prefix is shown in lists and finds the row; the whole key is hashed. */
const KEY_PATTERN = /^ssk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const CATALOGUE = new Set(PERMISSION_CATALOGUE.map((p) => p.name));
const LAST_USED_EVERY_MS = 60_000;

export interface ApiKeyIdentity {
  readonly id: string;
  readonly userId: string;
  readonly scope: readonly string[];
}

interface CachedKey extends ApiKeyIdentity {
  readonly hash: string;
  readonly expiresAt: number | null;
}

const keyOf = (tenant: TenantContext, prefix: string) => `apikey:${tenant.schema}:${prefix}`;

const COLUMNS = ['id', 'name', 'prefix', 'permissions', 'expires_at', 'last_used_at', 'created_at'] as const;

/** API keys: shown once, stored hashed, scoped to at most their owner's permissions, revocable. */
export class ApiKeyService {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
    private readonly access: AccessService,
    private readonly changes: Changes,
  ) {
    changes.listen(this);
  }

  /** Drops cached keys a committed change made stale (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    if (change.kind === 'tenant') return this.local.invalidate(keyOf(tenant, ''));
    if (change.kind !== 'api_keys') return undefined;
    return Promise.all(change.prefixes.map((prefix) => this.local.invalidate(keyOf(tenant, prefix)))).then(() => undefined);
  }

  /** Revokes every live key of a user (the user is deleted), in the caller's work. */
  async revokeAllOf(work: Work, userId: string): Promise<number> {
    const rows = await work.trx.updateTable('api_keys').set({ deleted_at: new Date(), updated_at: new Date() }).where('user_id', '=', userId).where('deleted_at', 'is', null).returning('prefix').execute();
    if (rows.length) work.changed({ kind: 'api_keys', prefixes: rows.map((r) => r.prefix) });
    return rows.length;
  }

  async create(tenant: TenantContext, userId: string, input: { name: string; permissions: string[]; expires_at?: string }, actor: AuditActor) {
    const checks = new FieldChecks();
    const name = input.name.trim();
    if (name.length < 1 || name.length > 200) checks.fail('name', text('reason.length_between', { min: 1, max: 200 }));
    if (input.permissions.length === 0) checks.fail('permissions', text('reason.some_permission'));
    const unknown = input.permissions.filter((p) => !CATALOGUE.has(p));
    if (unknown.length) checks.fail('permissions', text('reason.unknown_permissions', { permissions: unknown.join(', ') }));
    let expiresAt: Date | null = null;
    if (input.expires_at !== undefined) {
      expiresAt = new Date(input.expires_at);
      if (Number.isNaN(expiresAt.getTime()) || expiresAt <= new Date()) checks.fail('expires_at', text('reason.future_date_time'));
    }
    checks.done();
    const data = await this.access.data(tenant, userId);
    for (const permission of input.permissions) {
      // A key never carries more than its owner holds now: a wildcard needs every permission it covers.
      const lacking = missingForGrant(data, [permission]);
      if (lacking) throw new DomainError('permission.not_held', text('detail.key_permission_not_held', { lacking, permission }));
    }
    const prefix = randomBytes(9).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 12);
    const key = `ssk_${prefix}_${randomBytes(32).toString('base64url')}`;
    const row = await transact(this.db, this.changes, tenant, async ({ trx, changed }) => {
      const created = await trx
        .insertInto('api_keys')
        .values({ user_id: userId, name, prefix, key_hash: sha256(key), permissions: [...new Set(input.permissions)], expires_at: expiresAt })
        .returning(COLUMNS)
        .executeTakeFirstOrThrow();
      await writeAudit(trx, actor, { action: 'api_keys.create', entityType: 'api_keys', entityId: created.id, after: created });
      changed({ kind: 'api_keys', prefixes: [prefix] });
      return created;
    });
    return { ...row, key };
  }

  list(tenant: TenantContext, userId: string) {
    return tenantDb(this.db, tenant.schema)
      .selectFrom('api_keys')
      .select(COLUMNS)
      .where('user_id', '=', userId)
      .where('deleted_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute();
  }

  async revoke(tenant: TenantContext, userId: string, id: string, actor: AuditActor): Promise<void> {
    await transact(this.db, this.changes, tenant, async ({ trx, changed }) => {
      const row = await trx
        .updateTable('api_keys')
        .set({ deleted_at: new Date(), updated_at: new Date() })
        .where('id', '=', id)
        .where('user_id', '=', userId)
        .where('deleted_at', 'is', null)
        .returning(['id', 'prefix', 'name'])
        .executeTakeFirst();
      if (!row) throw DomainError.notFound('api_key');
      await writeAudit(trx, actor, { action: 'api_keys.delete', entityType: 'api_keys', entityId: row.id, before: row });
      changed({ kind: 'api_keys', prefixes: [row.prefix] });
    });
  }

  /** The key's identity, or 401. A key of another tenant is simply unknown here. */
  async authenticate(tenant: TenantContext, key: string): Promise<ApiKeyIdentity> {
    const match = KEY_PATTERN.exec(key);
    if (!match) throw new DomainError('auth.invalid_api_key');
    const prefix = match[1]!;
    const cached = await this.local.load<CachedKey | null>(keyOf(tenant, prefix), async () => {
      const row = await tenantDb(this.db, tenant.schema)
        .selectFrom('api_keys')
        .select(['id', 'user_id', 'key_hash', 'permissions', 'expires_at'])
        .where('prefix', '=', prefix)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return row ? { id: row.id, userId: row.user_id, hash: row.key_hash, scope: row.permissions, expiresAt: row.expires_at?.getTime() ?? null } : null;
    });
    const given = Buffer.from(sha256(key), 'hex');
    if (!cached || !timingSafeEqual(given, Buffer.from(cached.hash, 'hex')) || (cached.expiresAt !== null && cached.expiresAt <= Date.now())) {
      throw new DomainError('auth.invalid_api_key');
    }
    this.touch(tenant, cached.id);
    return { id: cached.id, userId: cached.userId, scope: cached.scope };
  }

  /** Records last_used_at at most once a minute per key, off the request path. */
  private touch(tenant: TenantContext, id: string): void {
    const now = Date.now();
    if ((this.lastUsedWritten.get(id) ?? 0) > now - LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(id, now);
    void tenantDb(this.db, tenant.schema)
      .updateTable('api_keys')
      .set({ last_used_at: new Date(now) })
      .where('id', '=', id)
      .execute()
      .catch(() => this.lastUsedWritten.delete(id));
  }
}
