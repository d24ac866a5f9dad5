import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** `shared.tenants`: owned by tenant-service when it exists; created by us only when absent. */
export interface TenantsTable {
  id: Generated<string>;
  slug: string;
  name: string;
  schema_name: string;
  status: Generated<string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export const SCHEMA_STATUSES = ['initializing', 'ready', 'failed'] as const;
export type SchemaStatus = (typeof SCHEMA_STATUSES)[number];

/** `shared.tenant_schemas`: our record of each tenant schema's state. */
export interface TenantSchemasTable {
  schema_name: string;
  tenant_id: string | null;
  version: Generated<number>;
  status: SchemaStatus;
  started_at: Date | null;
  finished_at: Date | null;
  last_duration_ms: number | null;
  last_error: string | null;
  /** A schema provisioned ahead of demand, renamed to a tenant's when one is created. */
  is_spare: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface PlatformMigrationsTable {
  version: number;
  name: string;
  applied_at: Timestamp;
}

/** `shared.event_signals`: a tenant schema with events to dispatch or deliveries due at `due_at`. */
export interface EventSignalsTable {
  id: ColumnType<string, never, never>;
  schema_name: string;
  due_at: Timestamp;
}

/** `shared.tenant_backups`: one backup archive of a tenant in the backup store. */
export interface TenantBackupsTable {
  id: Generated<string>;
  tenant_id: string;
  tenant_slug: string;
  kind: 'manual' | 'scheduled' | 'final';
  storage_key: string;
  size_bytes: ColumnType<string, number, number>;
  sha256: string;
  schema_version: number;
  created_at: Timestamp;
}

export interface PlatformDatabase {
  tenants: TenantsTable;
  tenant_backups: TenantBackupsTable;
  event_signals: EventSignalsTable;
  tenant_schemas: TenantSchemasTable;
  platform_migrations: PlatformMigrationsTable;
}
