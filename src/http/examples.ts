/**
 * Gives every request body and success response of the OpenAPI document an example, built
 * from the schema itself: a property's own `examples` or `default` when it has one, otherwise
 * a value of its type and format. Written examples win; this fills the rest.
 */
type Schema = Record<string, unknown> & {
  type?: string | string[];
  format?: string;
  examples?: unknown[];
  default?: unknown;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  $ref?: string;
};

// Strings tried in turn where a schema has no format: the first its length and pattern allow.
const TEXTS = ['text', 'https://acme.example/', 'acme'];

function textOf(schema: Schema): string {
  const fits = (s: string) => s.length >= (schema.minLength ?? 0) && s.length <= (schema.maxLength ?? Infinity) && (!schema.pattern || new RegExp(schema.pattern, 'u').test(s));
  const given = schema.format ? FORMATS[schema.format] : undefined;
  return [...(given ? [given] : []), ...TEXTS].find(fits) ?? given ?? 'x'.repeat(Math.max(1, schema.minLength ?? 1));
}

const FORMATS: Record<string, string> = {
  uuid: '3fa85f64-5717-4562-b3fc-2c963f66afa6',
  'date-time': '2026-01-01T09:00:00.000Z',
  date: '2026-01-01',
  email: 'ada@acme.example',
  uri: 'https://acme.example/',
};

export function exampleOf(schema: Schema | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return undefined;
  if (schema.examples?.length) return schema.examples[0];
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (schema.enum?.length) return schema.enum[0];
  if (schema.anyOf?.length) return exampleOf(schema.anyOf.find((s) => s.type !== 'null') ?? schema.anyOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [name, prop] of Object.entries(schema.properties ?? {})) {
        const value = exampleOf(prop, depth + 1);
        if (value !== undefined) out[name] = value;
      }
      return out;
    }
    case 'array':
      return [exampleOf(schema.items, depth + 1)].filter((v) => v !== undefined);
    case 'string':
      return textOf(schema);
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return true;
    case undefined:
      // A schema of any value (Type.Unknown): null is one; a reference is left alone.
      return schema.$ref || schema.allOf || schema.oneOf || schema.not ? undefined : null;
    default:
      return undefined;
  }
}

/** Adds `examples` to a route's body and 2xx responses where the schema has none. */
export function addExamples(schema: Record<string, unknown>): Record<string, unknown> {
  const withExample = (s: Schema | undefined) => (s && typeof s === 'object' && !s.examples && (s.type === 'object' || s.anyOf) ? { ...s, examples: [exampleOf(s)] } : s);
  const body = withExample(schema.body as Schema | undefined);
  const response = schema.response as Record<string, Schema> | undefined;
  const responses = response
    ? Object.fromEntries(Object.entries(response).map(([status, s]) => [status, status.startsWith('2') ? withExample(s) : s]))
    : undefined;
  return { ...schema, ...(body ? { body } : {}), ...(responses ? { response: responses } : {}) };
}
