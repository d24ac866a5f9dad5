import { sql } from 'kysely';
import { idColumn, timestampColumns } from './0001_core_tables.js';
import type { TenantMigration } from './migration.js';

/**
 * The tenant's OpenID Connect provider (docs/OIDC.md): its registered clients, what
 * oidc-provider stores (sessions, interactions, grants, codes and tokens, one row per artifact)
 * and its signing keys, the private halves encrypted with the service's secret box.
 */
export const oidc: TenantMigration = {
  version: 13,
  name: 'oidc',
  statements: ({ schema }) => [
    schema
      .createTable('oidc_clients')
      .$call(idColumn)
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('client_secret_hash', 'text')
      .addColumn('redirect_uris', sql`text[]`, (c) => c.notNull())
      .addColumn('post_logout_redirect_uris', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
      .addColumn('grant_types', sql`text[]`, (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
      .$call(timestampColumns)
      .addCheckConstraint('oidc_clients_name_length_ck', sql`char_length(name) between 1 and 200`)
      .addCheckConstraint('oidc_clients_type_ck', sql`type in ('public', 'confidential')`)
      .addCheckConstraint('oidc_clients_secret_ck', sql`(type = 'confidential') = (client_secret_hash is not null)`)
      .addCheckConstraint('oidc_clients_redirect_uris_ck', sql`cardinality(redirect_uris) between 1 and 20`),
    schema
      .createTable('oidc_payloads')
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('payload', 'jsonb', (c) => c.notNull())
      .addColumn('grant_id', 'text')
      .addColumn('uid', 'text')
      .addColumn('session_id', 'uuid', (c) => c.references('user_sessions.id').onDelete('cascade'))
      .addColumn('expires_at', 'timestamptz')
      .addColumn('consumed_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('oidc_payloads_pkey', ['model', 'id']),
    // Revocation by grant, sessions by uid, the periodic purge, and the cascade from sessions.
    schema.createIndex('oidc_payloads_grant_id_idx').on('oidc_payloads').column('grant_id').where(sql.ref('grant_id'), 'is not', null),
    schema.createIndex('oidc_payloads_uid_idx').on('oidc_payloads').columns(['model', 'uid']).where(sql.ref('uid'), 'is not', null),
    schema.createIndex('oidc_payloads_expires_at_idx').on('oidc_payloads').column('expires_at'),
    schema.createIndex('oidc_payloads_session_id_idx').on('oidc_payloads').column('session_id'),
    schema
      .createTable('oidc_signing_keys')
      .$call(idColumn)
      .addColumn('kid', 'text', (c) => c.notNull().unique())
      .addColumn('alg', 'text', (c) => c.notNull())
      .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
      .addColumn('encrypted_private_jwk', 'text', (c) => c.notNull())
      .addColumn('retired_at', 'timestamptz')
      .addColumn('published_until', 'timestamptz')
      .$call(timestampColumns)
      .addCheckConstraint('oidc_signing_keys_alg_ck', sql`alg in ('RS256', 'ES256')`),
    // At most one key signs at a time; retired ones stay published until their tokens expire.
    schema.createIndex('oidc_signing_keys_current_uq').on('oidc_signing_keys').unique().column('alg').where(sql.ref('retired_at'), 'is', null),
  ],
};
