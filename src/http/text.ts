import { DomainError, text } from '../errors.js';

/** The path of the first string holding a NUL character (PostgreSQL cannot store one), if any. */
export function findNul(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (depth > 32 || !isPlain(value)) return undefined;
  // Every request's path and query pass here: no array per property (Object.entries), and a
  // string's path is only spelled out when it holds a NUL.
  const object = value as Record<string, unknown>;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    if (key.includes('\u0000')) return path ? `${path}.${key.split('\u0000').join('\\0')}` : key.split('\u0000').join('\\0');
    const item = object[key];
    if (typeof item === 'string' ? !item.includes('\u0000') : !isPlain(item)) continue;
    const found = findNul(item, path ? `${path}.${key}` : key, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Parsed JSON and query strings: arrays and plain objects. A stream body (an archive upload) is not walked. */
function isPlain(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  // Object.prototype, or the prototype-less kinds query-string parsers make; never a class instance.
  const proto = Object.getPrototypeOf(value) as object | null;
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** For the preValidation hook: a NUL character anywhere in the query, the path or a JSON body is a 400 naming the field. */
export function nulError(request: { query: unknown; params: unknown; body: unknown }): DomainError | undefined {
  const field = findNul(request.query, 'querystring') ?? findNul(request.params, 'params') ?? findNul(request.body, '');
  return field === undefined ? undefined : DomainError.invalid(field || 'body', text('reason.no_nul'));
}
