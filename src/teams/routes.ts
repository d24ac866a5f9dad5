import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { expectedVersion, setEtag } from '../http/etag.js';
import { created, idempotencyOf } from '../http/idempotency.js';
import { listQuery } from '../http/listing.js';
import { DateTime, pageOf, problems } from '../http/schemas.js';
import { actorFrom, requireTenant } from '../http/context.js';
import { MEMBER_ROLES, TEAM_SORTS, type TeamService } from './service.js';

const TeamSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String({ examples: ['Sales'] }),
    description: Type.Union([Type.String(), Type.Null()]),
    parent_team_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'Team' },
);
const MemberSchema = Type.Object({
  user_id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  first_name: Type.Union([Type.String(), Type.Null()]),
  last_name: Type.Union([Type.String(), Type.Null()]),
  role: Type.String({ examples: ['lead'] }),
  added_at: DateTime,
});
const Body = {
  description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
  parent_team_id: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()])),
};
export const TeamListQuery = listQuery(TEAM_SORTS, { parent_team_id: Type.Optional(Type.String({ format: 'uuid' })) });
export const CreateTeam = Type.Object({ name: Type.String({ maxLength: 200 }), ...Body }, { additionalProperties: false });
const IdParams = Type.Object({ team_id: Type.String({ format: 'uuid' }) });
const MemberParams = Type.Object({ team_id: Type.String({ format: 'uuid' }), user_id: Type.String({ format: 'uuid' }) });

function view<T extends { version: number }>({ version: _v, ...team }: T) {
  return team;
}

/** `teams/...` and their members. */
export function teamRoutes(teams: TeamService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/teams',
      {
        config: { access: { permission: 'teams.read' } },
        schema: { tags: ['teams'], summary: 'List teams', querystring: TeamListQuery, response: { 200: pageOf(TeamSchema), ...problems(400, 401, 403, 404) } },
      },
      async (request) => {
        const page = await teams.list(requireTenant(request), request.query);
        return { ...page, items: page.items.map(view) };
      },
    );

    app.post(
      '/teams',
      {
        config: { access: { permission: 'teams.create' } },
        schema: { tags: ['teams'], summary: 'Create a team. Honours Idempotency-Key.', body: CreateTeam, response: { 201: TeamSchema, ...problems(400, 401, 403, 404, 409, 422) } },
      },
      async (request, reply) => {
        return created(request, reply, await teams.create(requireTenant(request), request.body, actorFrom(request), idempotencyOf(request)));
      },
    );

    app.get(
      '/teams/:team_id',
      { config: { access: { permission: 'teams.read' } }, schema: { tags: ['teams'], summary: 'Get a team', params: IdParams, response: { 200: TeamSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const team = await teams.get(requireTenant(request), request.params.team_id);
        setEtag(reply, team.version);
        return view(team);
      },
    );

    for (const method of ['PUT', 'PATCH'] as const) {
      app.route({
        method,
        url: '/teams/:team_id',
        config: { access: { permission: 'teams.update' } },
        schema: {
          tags: ['teams'],
          summary: 'Update a team (partial; a parent that would make a cycle is 409); honours If-Match',
          params: IdParams,
          body: Type.Object({ name: Type.Optional(Type.String({ maxLength: 200 })), ...Body }, { additionalProperties: false }),
          response: { 200: TeamSchema, ...problems(400, 401, 403, 404, 409, 412) },
        },
        handler: async (request, reply) => {
          const team = await teams.update(requireTenant(request), request.params.team_id, request.body, expectedVersion(request), actorFrom(request));
          setEtag(reply, team.version);
          return view(team);
        },
      });
    }

    app.delete(
      '/teams/:team_id',
      { config: { access: { permission: 'teams.delete' } }, schema: { tags: ['teams'], summary: 'Delete a team without sub-teams (soft); honours If-Match', params: IdParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409, 412) } } },
      async (request, reply) => {
        await teams.remove(requireTenant(request), request.params.team_id, expectedVersion(request), actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/teams/:team_id/members',
      { config: { access: { permission: 'teams.read' } }, schema: { tags: ['teams'], summary: 'Members of a team', params: IdParams, response: { 200: Type.Object({ items: Type.Array(MemberSchema) }), ...problems(400, 401, 403, 404) } } },
      async (request) => ({ items: await teams.members(requireTenant(request), request.params.team_id) }),
    );

    app.put(
      '/teams/:team_id/members/:user_id',
      {
        config: { access: { permission: 'teams.update' } },
        schema: {
          tags: ['teams'],
          operationId: 'setTeamMember',
          summary: 'Add a member, or change their role (member or lead)',
          params: MemberParams,
          body: Type.Object({ role: Type.Union(MEMBER_ROLES.map((r) => Type.Literal(r)), { default: 'member' }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ team_id: Type.String(), user_id: Type.String(), role: Type.String(), created: Type.Boolean() }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => teams.setMember(requireTenant(request), request.params.team_id, request.params.user_id, request.body.role, actorFrom(request)),
    );

    app.delete(
      '/teams/:team_id/members/:user_id',
      { config: { access: { permission: 'teams.update' } }, schema: { tags: ['teams'], summary: 'Remove a member', params: MemberParams, response: { 204: Type.Null(), ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        await teams.removeMember(requireTenant(request), request.params.team_id, request.params.user_id, actorFrom(request));
        return reply.status(204).send(null);
      },
    );
  };
}
