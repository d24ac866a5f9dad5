import { sql } from 'kysely';
import type { TenantMigration } from './migration.js';

/**
 * Audit analytics answered from indexes (docs/AUDIT.md, "Indexes and plans"): counts over a time
 * range read a covering btree on `created_at` (an index-only scan: audit rows are never updated,
 * so their pages stay all-visible), and the security view reads `(action, created_at)` with the
 * actor and entity for one action over a range. Each replaces the narrower index it covers.
 * Building them holds off writes to the tenant's audit_logs until the migration commits;
 * reads, only from the final drops on.
 */
export const auditAnalyticsIndex: TenantMigration = {
  version: 10,
  name: 'audit_analytics_index',
  statements: ({ schema, schemaName }) => [
    // Kysely's index builder has no INCLUDE clause.
    sql`CREATE INDEX audit_logs_created_at_cover_idx ON ${sql.id(schemaName, 'audit_logs')} (created_at) INCLUDE (action, entity_type, actor_user_id, actor_type)`,
    sql`CREATE INDEX audit_logs_action_created_at_idx ON ${sql.id(schemaName, 'audit_logs')} (action, created_at) INCLUDE (actor_user_id, actor_type, entity_id)`,
    // Last: a drop locks the table against reads until the migration commits.
    schema.dropIndex('audit_logs_created_at_idx'),
    schema.dropIndex('audit_logs_action_idx'),
  ],
};
