import { sql, type Kysely } from 'kysely';
import { tenantDb } from '../db/database.js';
import { checkSchemaName, quoteIdent } from '../db/identifiers.js';
import { DomainError, text } from '../errors.js';
import type { PlatformDatabase, SchemaStatus } from '../db/platform-types.js';
import { channelSecretContext, totpSecretContext, webhookSecretContext, type SecretBox } from './secrets.js';

export interface RotateProgress {
  readonly done: number;
  readonly total: number;
  readonly schema: string;
  readonly ok: boolean;
  /** Secrets of this schema re-encrypted (0 when it failed: its transaction rolled back). */
  readonly rotated: number;
  readonly error?: string;
}

export interface RotateResult {
  /** Schemas visited, failed ones included. */
  readonly schemas: number;
  /** Secrets re-encrypted under the current key, over every schema that succeeded. */
  readonly rotated: number;
  readonly failed: readonly { schema: string; error: string }[];
}

/**
 * Re-encrypts, schema by schema, every `channel_configs.encrypted_secrets` not made with the
 * box's current key: decrypted with whichever configured key made it, encrypted with the
 * current one. One transaction per schema, its rows locked FOR UPDATE, so a schema is either
 * wholly rotated or left as it was; a failing schema (a ciphertext under a key the box does
 * not hold, say) is reported and the others go on. `version` and `updated_at` stay: the
 * content does not change, only the key it is kept under. A rerun skips what is current.
 */
export async function rotateChannelSecrets(
  db: Kysely<PlatformDatabase>,
  box: SecretBox,
  schemas: readonly string[],
  onProgress?: (p: RotateProgress) => void,
): Promise<RotateResult> {
  const failed: { schema: string; error: string }[] = [];
  let rotated = 0;
  let done = 0;
  for (const schema of schemas) {
    try {
      const count = await rotateSchema(db, box, checkSchemaName(schema));
      rotated += count;
      onProgress?.({ done: ++done, total: schemas.length, schema, ok: true, rotated: count });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failed.push({ schema, error: message });
      onProgress?.({ done: ++done, total: schemas.length, schema, ok: false, rotated: 0, error: message });
    }
  }
  return { schemas: schemas.length, rotated, failed };
}

/** The encrypted columns a rotation covers: channel configs' secrets, webhooks' signing secrets and users' TOTP secrets. */
const ENCRYPTED = [
  { table: 'channel_configs', column: 'encrypted_secrets', label: 'channel config', context: channelSecretContext },
  { table: 'webhooks', column: 'encrypted_secret', label: 'webhook', context: webhookSecretContext },
  { table: 'mfa_totp', column: 'encrypted_secret', label: 'TOTP secret', context: totpSecretContext },
] as const;

/** Whether the schema has the table (one not yet migrated to a later release may not). */
async function exists(trx: Kysely<never>, schema: string, table: string): Promise<boolean> {
  const row = await sql<{ found: string | null }>`SELECT to_regclass(${`${quoteIdent(schema)}.${quoteIdent(table)}`})::text AS found`.execute(trx);
  return row.rows[0]?.found != null;
}

async function rotateSchema(db: Kysely<PlatformDatabase>, box: SecretBox, schema: string): Promise<number> {
  return tenantDb(db, schema)
    .transaction()
    .execute(async (trx) => {
      let count = 0;
      for (const { table, column, label, context } of ENCRYPTED) {
        if (!(await exists(trx as never, schema, table))) continue;
        const rows = await sql<{ id: string; text: string }>`
          SELECT id, ${sql.ref(column)} AS text FROM ${sql.id(schema, table)}
          WHERE ${sql.ref(column)} IS NOT NULL
            -- Only rows under another key are locked; isCurrent below has the last word.
            AND split_part(${sql.ref(column)}, '.', 2) <> ${box.currentKeyId}
          ORDER BY id FOR UPDATE`.execute(trx);
        for (const row of rows.rows) {
          if (box.isCurrent(row.text)) continue;
          let value: unknown;
          try {
            value = box.decrypt(row.text, context(schema, row.id));
          } catch (error) {
            throw new Error(`${label} ${row.id}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
          }
          await sql`UPDATE ${sql.id(schema, table)} SET ${sql.ref(column)} = ${box.encrypt(value, context(schema, row.id))} WHERE id = ${row.id}`.execute(trx);
          count++;
        }
      }
      return count;
    });
}

export interface RotationTargets {
  /** Ready tenant schemas holding a `channel_configs` table: what `secrets rotate` rotates. */
  readonly ready: readonly string[];
  /**
   * Tenant schemas not ready (a failed migration, say) that still hold a `channel_configs`
   * table: their secrets may be under an old key, so they are reported, not rotated.
   */
  readonly notReady: readonly { schema: string; status: SchemaStatus }[];
}

/** The tenant schemas whose channel secrets a rotation covers. Spare schemas hold no data and are left out. */
export async function rotationTargets(db: Kysely<PlatformDatabase>): Promise<RotationTargets> {
  const rows = await sql<{ schema_name: string; status: SchemaStatus }>`
    SELECT s.schema_name, s.status
    FROM shared.tenant_schemas s
    WHERE NOT s.is_spare
      AND EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = s.schema_name AND c.relname = 'channel_configs' AND c.relkind IN ('r', 'p'))
    ORDER BY s.schema_name`.execute(db);
  return {
    ready: rows.rows.filter((r) => r.status === 'ready').map((r) => r.schema_name),
    notReady: rows.rows.filter((r) => r.status !== 'ready').map((r) => ({ schema: r.schema_name, status: r.status })),
  };
}

/**
 * Binds the secrets of rows copied from schema `from` into schema `to` (an import, a fork) to
 * their new schema: decrypted under the old binding, encrypted with the current key under the
 * new one. A secret under a key the box does not hold is a 400 naming the key.
 */
export async function rebindSecrets(trx: Kysely<never>, box: SecretBox, from: string, to: string): Promise<number> {
  let count = 0;
  for (const { table, column, context } of ENCRYPTED) {
    if (!(await exists(trx, to, table))) continue;
    const rows = await sql<{ id: string; text: string }>`SELECT id, ${sql.ref(column)} AS text FROM ${sql.id(to, table)} WHERE ${sql.ref(column)} IS NOT NULL`.execute(trx);
    for (const row of rows.rows) {
      let value: unknown;
      try {
        value = box.decrypt(row.text, context(from, row.id));
      } catch {
        throw DomainError.invalid('archive', text('reason.secret_unreadable', { table, id: String(row.id) }));
      }
      await sql`UPDATE ${sql.id(to, table)} SET ${sql.ref(column)} = ${box.encrypt(value, context(to, row.id))} WHERE id = ${row.id}`.execute(trx);
      count++;
    }
  }
  return count;
}
