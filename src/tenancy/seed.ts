import { sql, type Kysely } from 'kysely';
import { DEFAULT_ROLES, PERMISSION_CATALOGUE } from '../access/catalogue.js';
import type { TenantDatabase } from '../db/types.js';
import { DEFAULT_SETTINGS } from '../settings/defaults.js';

/**
 * Default data, idempotent: missing catalogue permissions and settings are added (so a
 * later release's additions reach existing tenants); a default role gets its default
 * grants only when this run creates it, so an admin's later edits are never undone.
 * Rows are explicit VALUES (no INSERT ... SELECT), a few statements in all.
 */
export async function seedDefaults(db: Kysely<TenantDatabase>): Promise<void> {
  await db
    .insertInto('permissions')
    .values(PERMISSION_CATALOGUE.map((p) => ({ name: p.name, resource: p.resource, action: p.action, description: p.description })))
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();

  await db
    .insertInto('settings')
    .values(
      DEFAULT_SETTINGS.map((s) => ({
        key: s.key,
        value: JSON.stringify(s.value),
        type: s.type,
        category: s.category,
        description: s.description,
        is_public: s.isPublic,
        validation: JSON.stringify(s.validation),
      })),
    )
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();

  const createdRoles = await db
    .insertInto('roles')
    .values(DEFAULT_ROLES.map((r) => ({ name: r.name, description: r.description, priority: r.priority, is_system: true })))
    .onConflict((oc) => oc.expression(sql`lower(name)`).where('deleted_at', 'is', null).doNothing())
    .returning(['id', 'name'])
    .execute();
  if (createdRoles.length === 0) return;

  const permissionIds = new Map(
    (await db.selectFrom('permissions').select(['id', 'name']).execute()).map((p) => [p.name, p.id] as const),
  );
  const grants = createdRoles.flatMap((role) =>
    (DEFAULT_ROLES.find((r) => r.name === role.name)?.grants ?? []).map((name) => {
      const permissionId = permissionIds.get(name);
      if (!permissionId) throw new Error(`default grant names an unknown permission: ${name}`);
      return { role_id: role.id, permission_id: permissionId, effect: 'allow' as const };
    }),
  );
  if (grants.length > 0) {
    await db.insertInto('role_permissions').values(grants).onConflict((oc) => oc.columns(['role_id', 'permission_id']).doNothing()).execute();
  }
}
