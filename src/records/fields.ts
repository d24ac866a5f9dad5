import { Type, type TProperties, type TSchema } from 'typebox';
import { DateTime } from '../http/schemas.js';

/** Schema pieces the resources share. */
export const Uuid = Type.String({ format: 'uuid' });
export const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
export const optional = <T extends TSchema>(schema: T) => Type.Optional(schema);
export const oneOf = (values: readonly string[], description?: string) =>
  Type.Union(values.map((v) => Type.Literal(v)), description ? { description } : {});

/** A non-blank title of up to 500 characters. */
export const Title = Type.String({ minLength: 1, maxLength: 500, pattern: '\\S', examples: ['Follow up on the renewal'] });
/** Free text of up to 100,000 characters. */
export const Text = Type.String({ maxLength: 100_000 });
export const Timestamp = DateTime;
export const DateOnly = Type.String({ format: 'date', examples: ['2026-01-01'] });

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;

/** Every property optional: the body of a partial update. */
export function partial(props: TProperties): TProperties {
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, Type.Optional(v)]));
}

/** Properties without some keys (fields a create sets but an update may not, and the reverse). */
export function without(props: TProperties, ...keys: string[]): TProperties {
  return Object.fromEntries(Object.entries(props).filter(([k]) => !keys.includes(k)));
}
