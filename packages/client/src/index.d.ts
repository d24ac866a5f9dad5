import type { Client as FetchClient, ClientOptions } from 'openapi-fetch';
import type { components, operations, paths } from './schema.js';

export type { components, operations, paths };

/** A client of the REST API: `client.GET('/api/v1/tenants/{tenant_slug}/users', { params })`, typed path by path. */
export type Client = FetchClient<paths>;

/** RFC 9457 problem details: the body of every error answer (`error` of a call). */
export type Problem = components['schemas']['Problem'];

/** The JSON body an operation answers with on success, by operationId: `Answer<'getUser'>`. */
export type Answer<Id extends keyof operations> = operations[Id]['responses'] extends infer R
  ? { [S in keyof R]: S extends 200 | 201 | 202 ? (R[S] extends { content: { 'application/json': infer B } } ? B : never) : never }[keyof R]
  : never;

export interface CreateClientOptions extends Omit<ClientOptions, 'baseUrl' | 'fetch'> {
  /** Where the service answers, without a path: `https://id.example.com`. */
  readonly baseUrl: string;
  /** A bearer token (tenant access token or system token), or a function giving the current one. */
  readonly token?: string | (() => string | undefined | Promise<string | undefined>);
  /** An API key (X-API-Key), sent when there is no token. */
  readonly apiKey?: string;
  /** Another fetch (tests, proxies, retries). */
  readonly fetch?: (input: Request) => Promise<Response>;
}

/** A typed client of the service at `baseUrl`, sending `token` (or `apiKey`) with every request. */
export function createClient(options: CreateClientOptions): Client;
