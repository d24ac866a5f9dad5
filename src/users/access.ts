import { sql, type Kysely } from 'kysely';
import { touchedByRoles, withRoles } from '../access/authority.js';
import { accessGuard, actorOf, loadRoleShapes } from '../access/guard.js';
import type { AccessService, Explanation } from '../access/service.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import { transact, type Rehearsal } from '../db/work.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { DomainError, text } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';
import { loadUserView, type UserView } from './view.js';

/** Users' roles and permission explanations; the rest of user management builds on it. */
export class UserAccessService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly access: AccessService,
    private readonly changes: Changes,
  ) {}

  /**
   * Replaces a user's roles. Refused: changing your own roles (403), a user who holds a
   * permission you lack, or a role with an entry you do not hold (403, the out-rank rule of
   * access/guard.ts), taking "everything" from the last active user who has it (409). With a
   * rehearsal, a dry run of the same change (access/preview.ts).
   */
  async setRoles(tenant: TenantContext, actorUserId: string, userId: string, roleNames: readonly string[], actor: AuditActor, rehearsal?: Rehearsal): Promise<UserView> {
    if (actorUserId === userId) throw new DomainError('permission.self_change', text('detail.self_roles'));
    const names = [...new Set(roleNames.map((n) => n.trim().toLowerCase()))];
    const db = tenantDb(this.db, tenant.schema);
    await transact(this.db, this.changes, tenant, async ({ trx, changed, watch }) => {
      await accessGuard.lock(trx);
      const target = await trx.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
      if (!target) throw DomainError.notFound('user');
      const roles = names.length
        ? await trx.selectFrom('roles').select(['id', 'name']).where((eb) => eb(eb.fn('lower', ['name']), 'in', names)).where('deleted_at', 'is', null).execute()
        : [];
      const unknown = names.filter((n) => !roles.some((r) => r.name.toLowerCase() === n));
      if (unknown.length) throw DomainError.invalid('roles', text('reason.unknown_roles', { roles: unknown.join(', ') }));

      const current = await trx
        .selectFrom('user_roles as ur')
        .innerJoin('roles as r', 'r.id', 'ur.role_id')
        .select(['r.id', 'r.name'])
        .where('ur.user_id', '=', userId)
        .execute();
      const added = roles.filter((r) => !current.some((c) => c.id === r.id));
      const removed = current.filter((c) => !roles.some((r) => r.id === c.id));
      // Giving a role or taking one away touches every entry it has, deny entries included: a
      // manager can neither make an admin nor weaken one.
      const shapes = await loadRoleShapes(trx, [...roles, ...current].map((r) => r.id));
      const next = roles.map((r) => shapes.get(r.id)!);
      const touched = touchedByRoles(current.flatMap((r) => shapes.get(r.id) ?? []), next);
      await accessGuard.checkUserChange(trx, actorOf(actor), userId, { after: (before) => withRoles(before, next), touched });
      await watch([userId]);

      if (removed.length) await trx.deleteFrom('user_roles').where('user_id', '=', userId).where('role_id', 'in', removed.map((r) => r.id)).execute();
      if (added.length) await trx.insertInto('user_roles').values(added.map((r) => ({ user_id: userId, role_id: r.id, assigned_by: actorUserId }))).execute();
      await trx.updateTable('users').set({ updated_at: new Date(), version: sql`version + 1` }).where('id', '=', userId).execute();
      await writeAudit(trx, actor, {
        action: 'users.update_roles',
        entityType: 'users',
        entityId: userId,
        before: { roles: current.map((r) => r.name).sort() },
        after: { roles: roles.map((r) => r.name).sort() },
      });
      changed({ kind: 'access', userId });
    }, rehearsal);
    return loadUserView(db, userId);
  }

  async explain(tenant: TenantContext, userId: string) {
    const db = tenantDb(this.db, tenant.schema);
    const user = await db.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    const data = await this.access.data(tenant, userId);
    const decisions: Explanation[] = await this.access.explain(tenant, userId);
    const now = new Date();
    return {
      user_id: userId,
      roles: [...data.roles],
      overrides: data.overrides.map((o) => ({ permission: o.permission, effect: o.effect, expires_at: o.expiresAt, active: o.expiresAt === null || o.expiresAt > now })),
      effective: decisions.filter((d) => d.allowed).map((d) => d.permission),
      decisions,
    };
  }
}

