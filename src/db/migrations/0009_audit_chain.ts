import { sql } from 'kysely';
import { canonical, chainStep, GENESIS, lastLink } from '../audit-chain.js';
import type { TenantMigration } from './migration.js';

/**
 * The audit hash chain (src/audit/chain.ts): `seq` and `hash` on every audit row, and the chain's
 * head in the one-row table `audit_chain`. Rows written before it are chained in the order they
 * were written (created_at, then id), by a running aggregate that exists only during the step.
 */
export const auditChain: TenantMigration = {
  version: 9,
  name: 'audit_chain',
  statements: ({ schema, schemaName }) => {
    const table = sql.id(schemaName, 'audit_logs');
    const step = sql.id(schemaName, 'audit_chain_step');
    const fold = sql.id(schemaName, 'audit_chain_fold');
    return [
      schema.alterTable('audit_logs').addColumn('seq', 'int8').addColumn('hash', 'text'),
      schema
        .createTable('audit_chain')
        .addColumn('one_row', 'boolean', (c) => c.primaryKey().defaultTo(true))
        .addColumn('seq', 'int8', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addCheckConstraint('audit_chain_one_row_ck', sql`one_row`),
      sql`CREATE FUNCTION ${step}(previous text, row_text text) RETURNS text LANGUAGE sql IMMUTABLE AS $body$ SELECT ${chainStep(sql.raw('previous'), sql.raw('row_text'))} $body$`,
      sql`CREATE AGGREGATE ${fold}(text) (SFUNC = ${step}, STYPE = text, INITCOND = ${sql.raw(`'${GENESIS}'`)})`,
      sql`ALTER TABLE ${table} DISABLE TRIGGER audit_logs_no_update_delete`,
      sql`UPDATE ${table} AS a SET seq = c.position, hash = c.hash
FROM (SELECT n.id, n.position, ${fold}(${canonical(sql.ref('n.position'), (column) => sql.ref(`n.${column}`))}) OVER (ORDER BY n.position) AS hash
      FROM (SELECT l.*, row_number() OVER (ORDER BY l.created_at, l.id) AS position FROM ${table} AS l) AS n) AS c
WHERE a.id = c.id`,
      sql`ALTER TABLE ${table} ENABLE TRIGGER audit_logs_no_update_delete`,
      sql`ALTER TABLE ${table} ALTER COLUMN seq SET NOT NULL, ALTER COLUMN hash SET NOT NULL`,
      schema.createIndex('audit_logs_seq_uq').on('audit_logs').column('seq').unique(),
      sql`INSERT INTO ${sql.id(schemaName, 'audit_chain')} (seq, hash) ${lastLink(schemaName)}`,
      sql`DROP AGGREGATE ${fold}(text)`,
      sql`DROP FUNCTION ${step}(text, text)`,
    ];
  },
};
