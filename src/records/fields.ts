import { Type, type TProperties, type TSchema } from 'typebox';
import { DateTime, YEAR_1_TO_9999 } from '../http/schemas.js';

/** Schema pieces the resources share. */
export const Uuid = Type.String({ format: 'uuid' });
export const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
export const optional = <T extends TSchema>(schema: T) => Type.Optional(schema);
/** A string from a fixed list (an `enum`: its error names the allowed values). */
export const oneOf = <const T extends readonly string[]>(values: T, description?: string) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

/** A non-blank title of up to 500 characters. */
export const Title = Type.String({ minLength: 1, maxLength: 500, pattern: '\\S', examples: ['Follow up on the renewal'] });
/** Free text of up to 100,000 characters. */
export const Text = Type.String({ maxLength: 100_000 });
export const Timestamp = DateTime;
export const DateOnly = Type.String({ format: 'date', pattern: YEAR_1_TO_9999, examples: ['2026-01-01'] });

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;

/** Every property optional: the body of a partial update. */
export function partial(props: TProperties): TProperties {
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, Type.Optional(v)]));
}

/** Properties without some keys (fields a create sets but an update may not, and the reverse). */
export function without(props: TProperties, ...keys: string[]): TProperties {
  return Object.fromEntries(Object.entries(props).filter(([k]) => !keys.includes(k)));
}
