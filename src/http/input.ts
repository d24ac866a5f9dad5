import type { ValidateFunction } from 'ajv';
import type { TSchema } from 'typebox';
import { DomainError } from '../errors.js';
import { validator } from './ajv.js';
import { fieldErrors } from './problem.js';

const ajv = validator();
const compiled = new WeakMap<object, ValidateFunction>();

/**
 * An input checked against a route's own schema, outside the route (GraphQL arguments): the same
 * rules, the same defaults filled in, the same `request.invalid` naming every failing field.
 */
export function checkInput<T>(schema: TSchema, value: unknown): T {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema as object);
    compiled.set(schema, validate);
  }
  // Defaults are written into the value: a copy, never the caller's object.
  const copy = structuredClone(value);
  if (!validate(copy)) throw new DomainError('request.invalid', undefined, fieldErrors(validate.errors ?? []));
  return copy as T;
}
