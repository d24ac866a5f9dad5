import { sql, type Kysely, type Transaction } from 'kysely';
import type { RoleShape } from '../access/authority.js';
import { PERMISSION_CATALOGUE } from '../access/catalogue.js';
import { accessGuard, actorOf } from '../access/guard.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import { transact, type Rehearsal } from '../db/work.js';
import { once, type IdempotencyKey, type Outcome } from '../db/idempotency.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { checkVersion, conflictOnUnique, DomainError, FieldChecks, text } from '../errors.js';
import { likePattern, parseSort } from '../db/listing.js';
import type { TenantContext } from '../tenancy/directory.js';

export interface RoleView {
  id: string;
  name: string;
  description: string | null;
  priority: number;
  is_system: boolean;
  permissions: string[];
  denied_permissions: string[];
  created_at: Date;
  updated_at: Date;
  version: number;
}

export interface RoleInput {
  name?: string;
  description?: string | null;
  priority?: number;
  permissions?: string[];
  denied_permissions?: string[];
}

export const ROLE_SORTS = ['name', 'priority', 'created_at'] as const;
const NAME = /^[A-Za-z][A-Za-z0-9 _.-]{0,99}$/;

const ADMIN = 'admin';
const CATALOGUE = new Set(PERMISSION_CATALOGUE.map((p) => p.name));
const shape = (role: RoleView): RoleShape => ({ name: role.name, priority: role.priority, allow: role.permissions, deny: role.denied_permissions });
const sorted = (names: readonly string[]) => [...new Set(names)].sort();
const sameEntries = (a: RoleShape, b: RoleShape) => a.priority === b.priority && sorted(a.allow).join() === sorted(b.allow).join() && sorted(a.deny).join() === sorted(b.deny).join();

/** A role's entries, deduplicated: known permission names, none both allowed and denied (400 otherwise, every failing field named). */
function checkEntries(allow: readonly string[], deny: readonly string[], checks = new FieldChecks()): { allow: string[]; deny: string[] } {
  for (const [field, names] of [['permissions', allow], ['denied_permissions', deny]] as const) {
    const unknown = names.filter((n) => !CATALOGUE.has(n));
    if (unknown.length) checks.fail(field, text('reason.unknown_permissions', { permissions: unknown.join(', ') }));
  }
  const both = allow.filter((p) => deny.includes(p));
  if (both.length) checks.fail('denied_permissions', text('reason.repeats_granted', { permissions: both.join(', ') }));
  checks.done();
  return { allow: sorted(allow), deny: sorted(deny) };
}

/** The users who hold a role. */
const holdersOf = async (db: Kysely<TenantDatabase>, roleId: string) => (await db.selectFrom('user_roles').select('user_id').where('role_id', '=', roleId).execute()).map((r) => r.user_id);

const uniqueRole = <T>(work: () => Promise<T>) => conflictOnUnique(work, DomainError.conflict('role.name_taken'));

/** Roles and their grants; every change invalidates the tenant's cached permissions. */
export class RoleService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly changes: Changes,
  ) {}

  async list(tenant: TenantContext, query: { page: number; page_size: number; search?: string; sort?: string }) {
    const db = tenantDb(this.db, tenant.schema);
    let base = db.selectFrom('roles').where('deleted_at', 'is', null);
    if (query.search) base = base.where('name', 'ilike', likePattern(query.search));
    const sort = parseSort(query.sort, { column: 'priority', direction: 'desc' });
    const [rows, total] = await Promise.all([
      base.select('id').orderBy(sql.ref(sort.column), sort.direction).orderBy('name').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const items = await this.load(db, rows.map((r) => r.id));
    return { items: rows.map((r) => items.get(r.id)!), total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  async get(tenant: TenantContext, id: string): Promise<RoleView> {
    return this.one(tenantDb(this.db, tenant.schema), id);
  }

  /** Creates a custom role; honours an idempotency key. */
  async create(tenant: TenantContext, input: RoleInput & { name: string }, actor: AuditActor, idempotency?: IdempotencyKey): Promise<Outcome<RoleView>> {
    return once(tenantDb(this.db, tenant.schema), idempotency, async (trx) => ({ status: 201, body: await this.insert(trx, input, actor) }));
  }

  private async insert(trx: Transaction<TenantDatabase>, input: RoleInput & { name: string }, actor: AuditActor): Promise<RoleView> {
    const checks = new FieldChecks();
    const name = checks.check(() => this.checkName(input.name))!;
    const entries = checkEntries(input.permissions ?? [], input.denied_permissions ?? [], checks);
    await accessGuard.checkRoleChange(trx, actorOf(actor), null, null, { name, priority: input.priority ?? 0, ...entries });
    const role = await uniqueRole(() =>
      trx
        .insertInto('roles')
        .values({ name, description: input.description?.trim() || null, priority: input.priority ?? 0, is_system: false })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    await this.replaceGrants(trx, role.id, entries.allow, entries.deny);
    const after = await this.one(trx, role.id);
    await writeAudit(trx, actor, { action: 'roles.create', entityType: 'roles', entityId: role.id, after });
    return after;
  }

  /** Changes a role; with a rehearsal, a dry run (access/preview.ts) of the same change. */
  async update(tenant: TenantContext, id: string, input: RoleInput, expected: number | undefined, actor: AuditActor, rehearsal?: Rehearsal): Promise<RoleView> {
    return transact(this.db, this.changes, tenant, async ({ trx, changed, watch }) => {
      await accessGuard.lock(trx);
      const before = await this.one(trx, id, true);
      checkVersion(expected, before.version);
      const checks = new FieldChecks();
      const name = input.name === undefined ? undefined : checks.check(() => this.checkName(input.name!));
      const entries = checkEntries(input.permissions ?? before.permissions, input.denied_permissions ?? before.denied_permissions, checks);
      if (before.is_system && name !== undefined && name !== before.name) throw DomainError.conflict('role.system_immutable', text('detail.system_role_rename'));
      const next: RoleShape = { name: name ?? before.name, priority: input.priority ?? before.priority, ...entries };
      if (before.is_system && before.name === ADMIN && !sameEntries(shape(before), next)) {
        throw DomainError.conflict('role.system_immutable', text('detail.admin_role_fixed'));
      }
      // Judged on the state before the change: the actor's own roles and the holders as they are.
      await accessGuard.checkRoleChange(trx, actorOf(actor), id, shape(before), next);
      await watch(() => holdersOf(trx, id));
      await uniqueRole(() =>
        trx
          .updateTable('roles')
          .set({
            ...(name !== undefined ? { name } : {}),
            ...(input.description !== undefined ? { description: input.description?.trim() || null } : {}),
            ...(input.priority !== undefined ? { priority: input.priority } : {}),
            updated_at: new Date(),
            version: sql`version + 1`,
          })
          .where('id', '=', id)
          .execute(),
      );
      if (input.permissions !== undefined || input.denied_permissions !== undefined) {
        await this.replaceGrants(trx, id, entries.allow, entries.deny);
      }
      const after = await this.one(trx, id);
      await writeAudit(trx, actor, { action: 'roles.update', entityType: 'roles', entityId: id, before, after });
      changed({ kind: 'roles' });
      return after;
    }, rehearsal);
  }

  /** Deletes a custom role nobody holds; with a rehearsal, a dry run of the same change. */
  async remove(tenant: TenantContext, id: string, expected: number | undefined, actor: AuditActor, rehearsal?: Rehearsal): Promise<void> {
    await transact(this.db, this.changes, tenant, async ({ trx, changed, watch }) => {
      await accessGuard.lock(trx);
      const before = await this.one(trx, id, true);
      checkVersion(expected, before.version);
      if (before.is_system) throw DomainError.conflict('role.system_immutable', text('detail.system_role_delete'));
      const assigned = await trx.selectFrom('user_roles').select('id').where('role_id', '=', id).limit(1).executeTakeFirst();
      if (assigned) throw DomainError.conflict('role.assigned');
      await accessGuard.checkRoleChange(trx, actorOf(actor), id, shape(before), null);
      await watch(() => holdersOf(trx, id));
      await trx.updateTable('roles').set({ deleted_at: new Date(), updated_at: new Date(), version: sql`version + 1` }).where('id', '=', id).execute();
      await writeAudit(trx, actor, { action: 'roles.delete', entityType: 'roles', entityId: id, before });
      changed({ kind: 'roles' });
    }, rehearsal);
  }

  private checkName(input: string): string {
    const name = input.trim();
    if (!NAME.test(name)) throw DomainError.invalid('name', text('reason.role_name'));
    return name;
  }

  /** Replaces a role's allow and deny entries (checked by checkEntries). */
  private async replaceGrants(trx: Kysely<TenantDatabase>, roleId: string, allow: readonly string[], deny: readonly string[]): Promise<void> {
    const names = [...allow, ...deny];
    const known = names.length ? await trx.selectFrom('permissions').select(['id', 'name']).where('name', 'in', names).execute() : [];
    await trx.deleteFrom('role_permissions').where('role_id', '=', roleId).execute();
    if (known.length) {
      await trx
        .insertInto('role_permissions')
        .values(known.map((k) => ({ role_id: roleId, permission_id: k.id, effect: deny.includes(k.name) ? ('deny' as const) : ('allow' as const) })))
        .execute();
    }
  }

  private async one(db: Kysely<TenantDatabase>, id: string, forUpdate = false): Promise<RoleView> {
    if (forUpdate) await db.selectFrom('roles').select('id').where('id', '=', id).forUpdate().execute();
    const role = (await this.load(db, [id])).get(id);
    if (!role) throw DomainError.notFound('role');
    return role;
  }

  private async load(db: Kysely<TenantDatabase>, ids: string[]): Promise<Map<string, RoleView>> {
    const map = new Map<string, RoleView>();
    if (ids.length === 0) return map;
    const [roles, grants] = await Promise.all([
      db.selectFrom('roles').select(['id', 'name', 'description', 'priority', 'is_system', 'created_at', 'updated_at', 'version']).where('id', 'in', ids).where('deleted_at', 'is', null).execute(),
      db
        .selectFrom('role_permissions as rp')
        .innerJoin('permissions as p', 'p.id', 'rp.permission_id')
        .select(['rp.role_id', 'p.name', 'rp.effect'])
        .where('rp.role_id', 'in', ids)
        .orderBy('p.name')
        .execute(),
    ]);
    for (const r of roles) {
      const mine = grants.filter((g) => g.role_id === r.id);
      map.set(r.id, { ...r, permissions: mine.filter((g) => g.effect === 'allow').map((g) => g.name), denied_permissions: mine.filter((g) => g.effect === 'deny').map((g) => g.name) });
    }
    return map;
  }
}
