import { DomainError, text } from '../errors.js';

/** A tenant slug as callers give it; `-` becomes `_` before checking. */
export const SLUG_PATTERN = /^[a-z][a-z0-9_]{1,40}$/;
/** Schema names accepted by the CLI: plain lower-case identifiers, no quoting ever needed. */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const RESERVED_SCHEMAS = new Set(['public', 'shared', 'tenant_template', 'information_schema']);
/** Slugs whose schema would collide with one of ours. */
const RESERVED_SLUGS = new Set(['template']);

export function normalizeSlug(input: string): string {
  return input.replace(/-/g, '_');
}

export function checkSlug(input: string, field = 'slug'): string {
  const slug = normalizeSlug(input);
  if (!SLUG_PATTERN.test(slug)) {
    throw DomainError.invalid(field, text('reason.slug'));
  }
  if (RESERVED_SLUGS.has(slug)) throw DomainError.invalid(field, text('reason.reserved', { value: slug }));
  return slug;
}

export function schemaNameForSlug(slug: string): string {
  return `tenant_${checkSlug(slug)}`;
}

/** Validates a schema name given directly (CLI); the only way a schema name reaches SQL. */
export function checkSchemaName(input: string, field = 'schema'): string {
  if (!SCHEMA_PATTERN.test(input)) {
    throw DomainError.invalid(field, text('reason.identifier'));
  }
  if (RESERVED_SCHEMAS.has(input) || input.startsWith('pg_')) {
    throw DomainError.invalid(field, text('reason.reserved', { value: input }));
  }
  return input;
}

/** Double-quotes an identifier for raw SQL (Kysely's `sql.id` does the same for queries). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Single-quotes a string literal for raw SQL built from our own, constant text. */
export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
