import { createRequire } from 'node:module';
import type * as GraphQL from 'graphql';

/**
 * graphql-js as mercurius loads it (CommonJS): graphql refuses objects of a second instance, and
 * a bundler or test runner may resolve `import 'graphql'` to its ESM build instead.
 */
export const graphql = createRequire(import.meta.url)('graphql') as typeof GraphQL;
