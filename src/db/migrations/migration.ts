import type { Compilable, RawBuilder, SchemaModule } from 'kysely';

/** What a tenant migration is given: builders already bound to the tenant's schema. */
export interface MigrationContext {
  /** `db.schema.withSchema(schemaName)`: every table and index it names lands in the tenant schema. */
  readonly schema: SchemaModule;
  /** The tenant schema, already validated; use it only through `sql.id(schemaName, ...)`. */
  readonly schemaName: string;
}

export type MigrationStatement = Compilable | RawBuilder<unknown>;

/**
 * One immutable step of the tenant schema. Shipped migrations are never edited or
 * renumbered: a change is a new migration with the next version.
 * Each statement is sent on its own (never one multi-statement string), so the
 * schema stays compatible with Citus schema-based sharding.
 */
export interface TenantMigration {
  readonly version: number;
  readonly name: string;
  statements(ctx: MigrationContext): MigrationStatement[];
}
