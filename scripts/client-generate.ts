// Writes the client package's types from the OpenAPI document (test/client.test.ts checks they are current).
import { writeFile } from 'node:fs/promises';
import { CLIENT_TYPES, clientTypes, openapiDocument } from './openapi.js';

await writeFile(new URL(`../${CLIENT_TYPES}`, import.meta.url), await clientTypes(await openapiDocument()));
