import { sql } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * The system `user` role no longer creates or updates channel configs (their fields hold mail
 * passwords and webhook URLs): its two allow entries are removed, as new tenants get it. A
 * tenant that wants them back grants them to a custom role.
 */
export const userRoleWithoutChannelWrites: TenantMigration = {
  version: 6,
  name: 'user_role_without_channel_writes',
  statements: ({ schemaName }) => [
    sql`DELETE FROM ${sql.id(schemaName, 'role_permissions')} rp
        USING ${sql.id(schemaName, 'roles')} r, ${sql.id(schemaName, 'permissions')} p
        WHERE rp.role_id = r.id AND p.id = rp.permission_id
          AND r.name = 'user' AND r.is_system AND rp.effect = 'allow'
          AND p.name IN ('channel_configs.create', 'channel_configs.update')`,
  ],
};
