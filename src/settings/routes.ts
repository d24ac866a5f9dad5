import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { expectedVersion, setEtag } from '../http/etag.js';
import { listQuery } from '../http/listing.js';
import { DateTime, pageOf, problems } from '../http/schemas.js';
import { actorFrom, requireTenant } from '../http/context.js';
import type { SettingsService } from './service.js';

const SettingSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    key: Type.String({ examples: ['password.min_length'] }),
    value: Type.Unknown({ description: 'Typed by `type`', examples: [12] }),
    type: Type.String({ examples: ['number'] }),
    category: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    is_public: Type.Boolean(),
    validation: Type.Unknown({ description: 'Constraints: min, max, integer, allowed' }),
    updated_at: DateTime,
  },
  { $id: 'Setting' },
);
export const SettingParams = Type.Object({ setting_id: Type.String({ maxLength: 200, description: 'The setting id, or its key' }) });

function view<T extends { version: number }>({ version: _v, ...setting }: T) {
  return setting;
}

/** `settings/...`: typed values, validated against their type and constraints. */
export function settingsRoutes(settings: SettingsService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/settings',
      {
        config: { access: { permission: 'settings.read' } },
        schema: { tags: ['settings'], summary: 'List settings', querystring: listQuery(['key', 'category', 'updated_at'], { category: Type.Optional(Type.String({ maxLength: 100 })) }), response: { 200: pageOf(SettingSchema), ...problems(400, 401, 403, 404) } },
      },
      async (request) => {
        const page = await settings.list(requireTenant(request), request.query);
        return { ...page, items: page.items.map(view) };
      },
    );

    app.get(
      '/settings/:setting_id',
      { config: { access: { permission: 'settings.read' } }, schema: { tags: ['settings'], summary: 'Get a setting (by id or key)', params: SettingParams, response: { 200: SettingSchema, ...problems(400, 401, 403, 404) } } },
      async (request, reply) => {
        const setting = await settings.get(requireTenant(request), request.params.setting_id);
        setEtag(reply, setting.version);
        return view(setting);
      },
    );

    app.put(
      '/settings/:setting_id',
      {
        config: { access: { permission: 'settings.update' } },
        schema: {
          tags: ['settings'],
          operationId: 'updateSetting',
          summary: 'Set a value (checked against the type and constraints); honours If-Match',
          params: SettingParams,
          body: Type.Object({ value: Type.Unknown() }, { additionalProperties: false, required: ['value'] }),
          response: { 200: SettingSchema, ...problems(400, 401, 403, 404, 412) },
        },
      },
      async (request, reply) => {
        const setting = await settings.update(requireTenant(request), request.params.setting_id, (request.body as { value: unknown }).value, expectedVersion(request), actorFrom(request));
        setEtag(reply, setting.version);
        return view(setting);
      },
    );
  };
}
