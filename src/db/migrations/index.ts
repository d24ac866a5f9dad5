import { coreTables } from './0001_core_tables.js';
import { extendedTables } from './0002_extended_tables.js';
import { idempotencyKeys } from './0003_idempotency_keys.js';
import { singleDefaultChannel } from './0004_single_default_channel.js';
import { sessionRotationInPlace } from './0005_session_rotation_in_place.js';
import { userRoleWithoutChannelWrites } from './0006_user_role_without_channel_writes.js';
import { eventsAndWebhooks } from './0007_events_and_webhooks.js';
import { realtimeTickets } from './0008_realtime_tickets.js';
import { auditChain } from './0009_audit_chain.js';
import { auditAnalyticsIndex } from './0010_audit_analytics_index.js';
import { search } from './0011_search.js';
import { mfa } from './0012_mfa.js';
import { oidc } from './0013_oidc.js';
import { passkeys } from './0014_passkeys.js';
import { passwordlessPasskeys } from './0015_passwordless_passkeys.js';
import type { TenantMigration } from './migration.js';

/** Every tenant migration, in the order it runs (strictly increasing versions). */
export const tenantMigrations: readonly TenantMigration[] = [coreTables, extendedTables, idempotencyKeys, singleDefaultChannel, sessionRotationInPlace, userRoleWithoutChannelWrites, eventsAndWebhooks, realtimeTickets, auditChain, auditAnalyticsIndex, search, mfa, oidc, passkeys, passwordlessPasskeys];

/** Version a freshly migrated tenant schema is at. */
export const LATEST_TENANT_VERSION: number = tenantMigrations.reduce(
  (latest, migration) => Math.max(latest, migration.version),
  0,
);
