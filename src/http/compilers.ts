import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { FastifyServerOptions } from 'fastify';
import type { Ajv, ValidateFunction } from 'ajv';
import { validator } from './ajv.js';

/**
 * Each distinct schema compiled once. Routes repeat their schemas (the problem responses of
 * every route, a user, a page of them, a path of one id), and every compilation leaves garbage
 * that costs the service long after start-up: V8 keeps one transition per first property name
 * added to an empty object (fast-json-stringify names each compiled root schema, Ajv's code
 * generator its variables), and past 1,536 of them until the next full collection, objects
 * built from `{}` stop sharing hidden classes. Every request builds such objects (its response
 * headers); each of their property accesses then misses V8's caches (docs/BENCHMARKS.md has the cost).
 * Compiling each distinct response schema once stays well under it.
 */
function memoized<A, F>(compile: (arg: A) => F, key: (arg: A) => string): (arg: A) => F {
  const compiled = new Map<string, F>();
  return (arg) => {
    const k = key(arg);
    let fn = compiled.get(k);
    if (fn === undefined) {
      fn = compile(arg);
      compiled.set(k, fn);
    }
    return fn;
  };
}

/** Fastify's serializer compilers (fast-json-stringify, as by default), one per distinct response schema of a plugin context. */
export function schemaController(): NonNullable<FastifyServerOptions['schemaController']> {
  const select = SerializerSelector();
  return {
    compilersFactory: {
      buildSerializer: (externalSchemas: unknown, options: unknown) =>
        // The context's shared schemas (`$ref`s) are the same for all its routes.
        memoized(select(externalSchemas, options as Parameters<typeof select>[1]), (route) => JSON.stringify(route.schema)),
    },
  };
}

/** The validator compiler: JSON bodies taken as sent (a number is not a string); path and query strings coerced. */
export function validatorCompiler(): (route: { schema: unknown; httpPart?: string }) => ValidateFunction {
  const body: Ajv = validator(false);
  const text: Ajv = validator('array');
  return memoized(
    ({ schema, httpPart }) => (httpPart === 'body' ? body : text).compile(schema as object),
    ({ schema, httpPart }) => `${httpPart === 'body' ? 'body' : 'text'} ${JSON.stringify(schema)}`,
  );
}
