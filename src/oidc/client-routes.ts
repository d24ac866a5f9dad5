import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorFrom, requireTenant } from '../http/context.js';
import { expectedVersion, setEtag } from '../http/etag.js';
import { created } from '../http/idempotency.js';
import { DateTime, PaginationQuery, pageOf, problems } from '../http/schemas.js';
import { type ClientView, type OidcClientService } from './clients.js';
import type { OidcKeyService } from './keys.js';

const ClientType = Type.Union([Type.Literal('public'), Type.Literal('confidential')], { description: '`public`: no secret, PKCE (S256) required; `confidential`: a secret' });
const ClientSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    client_id: Type.String({ description: 'The `client_id` an application sends (its `id`)' }),
    name: Type.String({ examples: ['Acme Intranet'] }),
    type: ClientType,
    redirect_uris: Type.Array(Type.String(), { examples: [['https://intranet.example.com/callback']] }),
    post_logout_redirect_uris: Type.Array(Type.String()),
    grant_types: Type.Array(Type.String(), { examples: [['authorization_code', 'refresh_token']] }),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'OidcClient' },
);
const CreatedClientSchema = Type.Object({
  ...ClientSchema.properties,
  client_secret: Type.Optional(Type.String({ description: 'A confidential client\'s secret (HTTP Basic at the token endpoint); returned only here', examples: ['ocs_Yq3kR8pV0wXcZ1u2nT5mB7aE9dF4gH6jK0lM2oP8sQ'] })),
});
const Name = Type.String({ minLength: 1, maxLength: 200 });
const Uris = (max: number) => Type.Array(Type.String({ minLength: 1, maxLength: 2000 }), { minItems: max === 20 ? 1 : 0, maxItems: 20, description: 'https, http on localhost, or (public clients) a private-use scheme such as `com.example.app:/callback`; no fragment' });
const GrantTypes = Type.Array(Type.Union([Type.Literal('authorization_code'), Type.Literal('refresh_token')]), { minItems: 1, maxItems: 2, description: 'Must include `authorization_code`; default both' });
const IdParams = Type.Object({ client_id: Type.String({ format: 'uuid' }) });
const KeySchema = Type.Object({ kid: Type.String(), alg: Type.String({ examples: ['RS256'] }), created_at: DateTime, retired_at: Type.Union([DateTime, Type.Null()]), published_until: Type.Union([DateTime, Type.Null()]) }, { $id: 'OidcSigningKey' });

const view = ({ version: _v, ...client }: ClientView) => client;

/** `oidc/clients` (the applications that may sign the tenant's users in) and the provider's signing keys (docs/OIDC.md). */
export function oidcClientRoutes(clients: OidcClientService, keys: OidcKeyService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/oidc/clients',
      { config: { access: { permission: 'oidc_clients.read' } }, schema: { tags: ['oidc'], summary: 'List OpenID Connect clients', querystring: PaginationQuery, response: { 200: pageOf(ClientSchema), ...problems(400, 401, 403, 404) } } },
      async (request) => {
        const page = await clients.list(requireTenant(request), request.query);
        return { ...page, items: page.items.map(view) };
      },
    );

    app.post(
      '/oidc/clients',
      {
        config: { access: { permission: 'oidc_clients.create' } },
        schema: {
          tags: ['oidc'],
          summary: 'Register a client; a confidential client\'s secret is in this answer only (so no Idempotency-Key)',
          body: Type.Object(
            { name: Name, type: ClientType, redirect_uris: Uris(20), post_logout_redirect_uris: Type.Optional(Uris(0)), grant_types: Type.Optional(GrantTypes) },
            { additionalProperties: false },
          ),
          response: { 201: CreatedClientSchema, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => created(request, reply, await clients.create(requireTenant(request), request.body, actorFrom(request))),
    );

    app.get(
      '/oidc/clients/:client_id',
      { config: { access: { permission: 'oidc_clients.read' } }, schema: { tags: ['oidc'], summary: 'Get an OpenID Connect client', params: IdParams, response: { 200: ClientSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const client = await clients.get(requireTenant(request), request.params.client_id);
        setEtag(reply, client.version);
        return view(client);
      },
    );

    app.patch(
      '/oidc/clients/:client_id',
      {
        config: { access: { permission: 'oidc_clients.update' } },
        schema: {
          tags: ['oidc'],
          summary: 'Change a client (its type and secret stay); honours If-Match',
          params: IdParams,
          body: Type.Object({ name: Type.Optional(Name), redirect_uris: Type.Optional(Uris(20)), post_logout_redirect_uris: Type.Optional(Uris(0)), grant_types: Type.Optional(GrantTypes) }, { additionalProperties: false }),
          response: { 200: ClientSchema, ...problems(400, 401, 403, 404, 412) },
        },
      },
      async (request, reply) => {
        const client = await clients.update(requireTenant(request), request.params.client_id, request.body, expectedVersion(request), actorFrom(request));
        setEtag(reply, client.version);
        return view(client);
      },
    );

    app.delete(
      '/oidc/clients/:client_id',
      {
        config: { access: { permission: 'oidc_clients.delete' } },
        schema: { tags: ['oidc'], summary: 'Delete a client with every grant and token issued to it; honours If-Match', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 412) } },
      },
      async (request, reply) => {
        await clients.remove(requireTenant(request), request.params.client_id, expectedVersion(request), actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/oidc/signing-keys',
      { config: { access: { permission: 'settings.read' } }, schema: { tags: ['oidc'], summary: 'The provider\'s signing keys, newest first (public facts only)', response: { 200: Type.Object({ items: Type.Array(KeySchema) }), ...problems(401, 403, 404) } } },
      async (request) => ({ items: await keys.list(requireTenant(request)) }),
    );

    app.post(
      '/oidc/signing-keys/rotate',
      {
        config: { access: { permission: 'settings.update' } },
        schema: { tags: ['oidc'], summary: 'A new signing key: published at once, signing two minutes later; the old one stays published until its tokens expire', response: { 200: KeySchema, ...problems(401, 403, 404) } },
      },
      async (request) => keys.rotate(requireTenant(request), actorFrom(request)),
    );
  };
}
