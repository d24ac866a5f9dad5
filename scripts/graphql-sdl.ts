// Writes docs/schema.graphql from the running schema's type definitions (test/graphql.test.ts checks they agree).
import { writeFile } from 'node:fs/promises';
import { buildSchema, printSchema } from 'graphql';
import { typeDefs } from '../src/graphql/schema.js';

await writeFile(new URL('../docs/schema.graphql', import.meta.url), `${printSchema(buildSchema(typeDefs))}\n`);
