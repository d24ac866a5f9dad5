import { sql, type Kysely } from 'kysely';
import { SEARCH_TABLES_0011 } from '../db/migrations/0011_search.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError, text } from '../errors.js';

/** The setting naming the tenant's text search configuration (docs/SEARCH.md, "Language"). */
export const SEARCH_LANGUAGE_KEY = 'search.language';

/** The text search configurations PostgreSQL ships (in `pg_catalog`): what the setting may name. */
export async function searchLanguages(db: Kysely<TenantDatabase>): Promise<string[]> {
  const r = await sql<{ name: string }>`SELECT cfgname AS name FROM pg_catalog.pg_ts_config WHERE cfgnamespace = 'pg_catalog'::regnamespace ORDER BY cfgname`.execute(db);
  return r.rows.map((row) => row.name);
}

/** Refuses (400, naming `value`) a language the database has no text search configuration for. */
export async function checkSearchLanguage(db: Kysely<TenantDatabase>, value: unknown): Promise<void> {
  const known = await searchLanguages(db);
  if (typeof value !== 'string' || !known.includes(value)) throw DomainError.invalid('value', text('reason.search_language', { known: known.join(', ') }));
}

/**
 * Indexes every searchable row of the tenant again under its (just changed) `search.language`,
 * in the caller's transaction: the rows' `search_config` follows the setting, their generated
 * vectors and GIN entries follow it, and rows written later take it as their default. Costs a
 * write of every such row (docs/SEARCH.md, "Changing the language").
 */
export async function applySearchLanguage(trx: Kysely<TenantDatabase>, schema: string): Promise<void> {
  // Read once per statement (an init plan), not once per row.
  const language = sql`(SELECT ${sql.id(schema, 'search_language')}())`;
  for (const table of SEARCH_TABLES_0011) {
    await sql`UPDATE ${sql.id(schema, table)} SET search_config = ${language} WHERE search_config <> ${language}`.execute(trx);
  }
}
