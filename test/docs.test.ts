import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACTIONS, DEFAULT_ROLES, PERMISSION_CATALOGUE, RESOURCES } from '../src/access/catalogue.js';
import type { RoleDefinition } from '../src/access/catalogue.js';
import { tenantColumns } from '../src/db/columns.js';
import { ERROR_CODES, KINDS } from '../src/error-codes.js';
import type { UdtName } from '../src/db/columns.js';
import { DEFAULT_SETTINGS } from '../src/settings/defaults.js';
import type { SettingValidation } from '../src/settings/defaults.js';

/*
 * Keeps docs/PERMISSIONS.md and docs/SCHEMA.md in step with the code they describe: the
 * catalogue, the default roles and settings, and the tenant tables and their columns.
 */

function readDoc(name: string): string {
  return readFileSync(new URL(`../docs/${name}`, import.meta.url), 'utf8');
}

/** Body of every heading (up to the next heading of any level), keyed by the heading text. */
function sections(doc: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of doc.split('\n')) {
    const heading = /^#{1,6}\s+(.+?)\s*$/.exec(line);
    if (heading) {
      const title = heading[1]!;
      if (result.has(title)) throw new Error(`duplicate heading: ${line}`);
      current = [];
      result.set(title, current);
    } else {
      current?.push(line);
    }
  }
  return result;
}

function section(all: Map<string, string[]>, title: string): string[] {
  const body = all.get(title);
  if (!body) throw new Error(`missing heading: ${title}`);
  return body;
}

/** The cells of one Markdown table row (a `\|` inside a cell is not a separator). */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/** Rows of the first table in `lines` whose header's first cell is `firstHeader` (header and separator excluded). */
function table(lines: readonly string[], firstHeader: string): string[][] {
  const start = lines.findIndex((l) => l.startsWith('|') && cells(l)[0] === firstHeader);
  if (start < 0) throw new Error(`no table starting with column "${firstHeader}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(cells(line));
  }
  return rows;
}

/** The table's rows keyed by their first cell. */
function rowsByFirstCell(rows: readonly string[][]): Map<string, string[]> {
  return new Map(rows.map((r) => [r[0]!, r]));
}

const code = (text: string) => `\`${text}\``;

describe('docs/PERMISSIONS.md', () => {
  const doc = sections(readDoc('PERMISSIONS.md'));

  it('lists every permission resource, and no other', () => {
    const rows = table(section(doc, 'Resources'), 'resource');
    expect(rows.map((r) => r[0])).toEqual(RESOURCES.map(code));
    for (const row of rows) expect(row[1], `meaning of ${row[0]}`).not.toBe('');
  });

  it('lists every action, and no other', () => {
    const rows = table(section(doc, 'Actions'), 'action');
    expect(rows.map((r) => r[0])).toEqual(ACTIONS.map(code));
  });

  it('gives the size of the catalogue', () => {
    expect(section(doc, 'The catalogue').join(' ')).toContain(`${PERMISSION_CATALOGUE.length} permissions in all`);
  });

  it('lists every default role with its priority and number of grants', () => {
    const rows = table(section(doc, 'Default roles'), 'role');
    expect(rows.map((r) => r[0])).toEqual(DEFAULT_ROLES.map((r) => code(r.name)));
    for (const role of DEFAULT_ROLES) {
      const row = rowsByFirstCell(rows).get(code(role.name))!;
      expect(row[1], `priority of ${role.name}`).toBe(String(role.priority));
      expect(row[2], `description of ${role.name}`).toBe(role.description);
      expect(row[3], `grants of ${role.name}`).toMatch(new RegExp(`^${role.grants.length}\\b`));
    }
  });

  it('renders the default grants exactly as the catalogue computes them', () => {
    const lines = section(doc, 'Default grants');
    const header = cells(lines.find((l) => l.startsWith('| resource |'))!);
    expect(header.slice(1)).toEqual(DEFAULT_ROLES.map((r) => `${code(r.name)} (${r.priority})`));

    const expectedCell = (role: RoleDefinition, resource: string): string => {
      if (role.grants.includes('*') || role.grants.includes(`${resource}.*`)) return code('*');
      const actions = ACTIONS.filter((a) => role.grants.includes(`${resource}.${a}`));
      return actions.length > 0 ? actions.join(', ') : '—';
    };
    const rows = table(lines, 'resource');
    expect(rows.map((r) => r[0])).toEqual(RESOURCES.map(code));
    for (const row of rows) {
      const resource = row[0]!.slice(1, -1);
      expect(row.slice(1), `grants on ${resource}`).toEqual(DEFAULT_ROLES.map((role) => expectedCell(role, resource)));
    }
  });

  it('lists every default setting with its type, default value, range, visibility and description', () => {
    const rows = table(section(doc, 'Default settings'), 'key');
    expect(rows.map((r) => r[0])).toEqual(DEFAULT_SETTINGS.map((s) => code(s.key)));

    const range = (v: SettingValidation): string => {
      const parts: string[] = [];
      if (v.min !== undefined || v.max !== undefined) parts.push(`${v.integer ? 'integer, ' : ''}${v.min ?? ''}–${v.max ?? ''}`);
      if (v.allowed) parts.push(v.allowed.join(', '));
      return parts.length > 0 ? parts.join('; ') : '—';
    };
    const byKey = rowsByFirstCell(rows);
    for (const s of DEFAULT_SETTINGS) {
      const [, category, type, value, allowed, isPublic, description] = byKey.get(code(s.key))!;
      expect({ category, type, value, allowed, isPublic, description }, s.key).toEqual({
        category: s.category,
        type: s.type,
        value: code(JSON.stringify(s.value)),
        allowed: range(s.validation),
        isPublic: s.isPublic ? 'yes' : 'no',
        description: s.description,
      });
    }
  });
});

describe('docs/SCHEMA.md', () => {
  const text = readDoc('SCHEMA.md');
  const doc = sections(text);
  const tables = Object.entries(tenantColumns) as [string, Record<string, { udtName: UdtName; nullable: boolean }>][];

  /** How the column tables spell each type. */
  const typeNames: Record<UdtName, string> = {
    uuid: 'uuid',
    text: 'text',
    inet: 'inet',
    int2: 'smallint',
    int4: 'integer',
    int8: 'bigint',
    numeric: 'numeric',
    bool: 'boolean',
    timestamptz: 'timestamptz',
    date: 'date',
    jsonb: 'jsonb',
    bytea: 'bytea',
    _uuid: 'uuid[]',
    _text: 'text[]',
    regconfig: 'regconfig',
    tsvector: 'tsvector',
  };

  it('counts the tenant tables', () => {
    expect(text).toContain(`A tenant schema holds ${tables.length} tables`);
  });

  it.each(tables.map(([name, columns]) => ({ name, columns })))(
    'has a section for $name listing each of its columns with type and nullability',
    ({ name, columns }) => {
      const rows = table(section(doc, code(name)), 'column');
      expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(columns).map(code).sort());
      for (const [column, spec] of Object.entries(columns)) {
        const [, type, nullDefault, meaning] = rowsByFirstCell(rows).get(code(column))!;
        expect(type, `${name}.${column} type`).toMatch(new RegExp(`^\`${typeNames[spec.udtName].replace(/[[\]]/g, '\\$&')}(\\(|\`)`));
        expect(nullDefault!.startsWith('not null'), `${name}.${column} nullability`).toBe(!spec.nullable);
        expect(meaning, `${name}.${column} meaning`).not.toBe('');
      }
    },
  );
});

describe('docs/ERRORS.md', () => {
  const doc = sections(readDoc('ERRORS.md'));

  it('lists every error code with its status and meaning, and no other', () => {
    const rows = table(section(doc, 'Error codes'), 'code');
    expect(rows.map((r) => r[0])).toEqual(Object.keys(ERROR_CODES).map(code));
    for (const [name, [kind, meaning]] of Object.entries(ERROR_CODES)) {
      const [, status, text] = rowsByFirstCell(rows).get(code(name))!;
      expect(Number(status), name).toBe(KINDS[kind].status);
      expect(text, name).toBe(meaning);
    }
  });
});
