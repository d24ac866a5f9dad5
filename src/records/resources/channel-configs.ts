import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Type, type TSchema } from 'typebox';
import { DomainError, text } from '../../errors.js';
import { validator } from '../../http/ajv.js';
import { fieldErrors } from '../../http/problem.js';
import { oneOf, optional } from '../fields.js';
import { writeAudit } from '../../audit/audit.js';
import { LOCK_CLASS } from '../../db/platform.js';
import { filter, type RecordSpec, type WriteContext } from '../resource.js';
import { channelSecretContext, type SecretBox } from '../secrets.js';

export const CHANNELS = ['email', 'sms', 'whatsapp', 'slack', 'webhook', 'teams', 'telegram', 'push'] as const;
export type Channel = (typeof CHANNELS)[number];

/** What a response, an audit row and the `config` column show in place of a secret. */
export const REDACTED = '[redacted]';

const str = (max = 500) => Type.String({ minLength: 1, maxLength: max });
const secret = (max = 4096) => Type.String({ minLength: 1, maxLength: max, description: 'secret: stored encrypted, never returned' });
const url = Type.String({ maxLength: 2000, format: 'uri', pattern: '^https?://' });
const e164 = Type.String({ pattern: '^\\+[1-9][0-9]{1,14}$' });

interface ChannelRules {
  readonly schema: TSchema;
  /** Fields kept encrypted. */
  readonly secrets: readonly string[];
  /** Fields that say where the secrets go: changing one needs the secrets sent again. */
  readonly destination?: readonly string[];
}

/** Per channel: the accepted config fields and which of them are secrets. */
export const CHANNEL_RULES: Readonly<Record<Channel, ChannelRules>> = {
  email: {
    schema: Type.Object({ host: str(255), port: optional(Type.Integer({ minimum: 1, maximum: 65535 })), username: optional(str(255)), password: optional(secret()), from: optional(Type.String({ maxLength: 320, format: 'email' })), secure: optional(Type.Boolean()) }),
    secrets: ['password'],
    destination: ['host', 'port', 'username', 'secure'],
  },
  sms: {
    schema: Type.Object({ provider: str(64), from: e164, account_id: optional(str(255)), api_key: optional(secret()), auth_token: optional(secret()) }),
    secrets: ['api_key', 'auth_token'],
    destination: ['provider', 'account_id'],
  },
  whatsapp: {
    schema: Type.Object({ phone_number_id: str(64), business_account_id: optional(str(64)), access_token: secret() }),
    secrets: ['access_token'],
  },
  slack: {
    schema: Type.Object({ webhook_url: optional(secret(2000)), bot_token: optional(secret()), channel: optional(str(200)), signing_secret: optional(secret()) }),
    secrets: ['webhook_url', 'bot_token', 'signing_secret'],
  },
  webhook: {
    schema: Type.Object({ url, method: optional(oneOf(['POST', 'PUT'])), secret: optional(secret()), headers: optional(Type.Record(Type.String({ maxLength: 200 }), Type.String({ maxLength: 4096 }))) }),
    secrets: ['secret', 'headers'],
    destination: ['url'],
  },
  teams: { schema: Type.Object({ webhook_url: secret(2000) }), secrets: ['webhook_url'] },
  telegram: { schema: Type.Object({ bot_token: secret(), chat_id: optional(str(64)) }), secrets: ['bot_token'] },
  push: {
    schema: Type.Object({ provider: oneOf(['fcm', 'apns']), project_id: optional(str(200)), bundle_id: optional(str(200)), key_id: optional(str(64)), team_id: optional(str(64)), server_key: optional(secret()), private_key: optional(secret(16384)) }),
    secrets: ['server_key', 'private_key'],
    destination: ['provider', 'project_id', 'bundle_id', 'key_id', 'team_id'],
  },
};

const SLACK_NEEDS = ['webhook_url', 'bot_token'];

const ajv = validator();
const validators = Object.fromEntries(CHANNELS.map((c) => [c, ajv.compile({ ...(CHANNEL_RULES[c].schema as object), additionalProperties: false })])) as Record<Channel, ReturnType<typeof ajv.compile>>;

/** Checks a channel's whole config; every problem is named (`config.port`, ...). */
export function validateConfig(channel: Channel, config: Record<string, unknown>): void {
  const validate = validators[channel];
  if (!validate(config)) {
    throw new DomainError('request.invalid', undefined, fieldErrors(validate.errors ?? [], 'config', text('reason.not_channel_field')));
  }
  if (channel === 'slack' && !SLACK_NEEDS.some((k) => config[k] !== undefined)) throw DomainError.invalid('config.webhook_url', text('reason.slack_target'));
}

/** Splits a config into what is stored in clear (secrets replaced by the marker) and the secrets. */
export function splitSecrets(channel: Channel, config: Record<string, unknown>) {
  const clear: Record<string, unknown> = {};
  const secrets: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (CHANNEL_RULES[channel].secrets.includes(key)) {
      secrets[key] = value;
      clear[key] = REDACTED;
    } else clear[key] = value;
  }
  return { clear, secrets };
}

const ConfigBody = Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), {
  description: `Per channel: ${CHANNELS.map((c) => `${c} {${Object.keys((CHANNEL_RULES[c].schema as unknown as { properties: object }).properties).join(', ')}}`).join('; ')}. Secrets (${[...new Set(CHANNELS.flatMap((c) => CHANNEL_RULES[c].secrets))].join(', ')}) are stored encrypted and shown as "${REDACTED}". On update, config fields are merged: a field set to null is removed, a secret sent back as "${REDACTED}" keeps its value.`,
  examples: [{ host: 'smtp.example.com', port: 587, username: 'mailer', password: 's3cret', from: 'noreply@example.com' }],
});
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', examples: ['Transactional mail'] });
const ChannelSchema = oneOf(CHANNELS);

/**
 * Channel configs: where a tenant's messages go (email, sms, whatsapp, slack, webhook, ...), with
 * the config checked per channel and its secrets encrypted (AES-256-GCM) in `encrypted_secrets`.
 * The `config` column, responses and audit rows only ever hold the "[redacted]" marker.
 */
export function channelConfigs(box: SecretBox): RecordSpec {
  return {
    table: 'channel_configs',
    path: 'channel-configs',
    label: 'channel config',
    schemaId: 'ChannelConfig',
    columns: ['channel', 'name', 'config', 'is_enabled', 'is_default'],
    internalColumns: ['encrypted_secrets'],
    fields: { channel: ChannelSchema, name: Type.String(), config: Type.Record(Type.String(), Type.Unknown()), is_enabled: Type.Boolean(), is_default: Type.Boolean() },
    create: { channel: ChannelSchema, name: Name, config: ConfigBody, is_enabled: optional(Type.Boolean()), is_default: optional(Type.Boolean()) },
    update: { name: optional(Name), config: optional(ConfigBody), is_enabled: optional(Type.Boolean()), is_default: optional(Type.Boolean()) },
    sorts: ['name', 'channel', 'created_at', 'updated_at'],
    defaultSort: { column: 'name', direction: 'asc' },
    search: ['name'],
    filters: {
      channel: filter.equals('channel', ChannelSchema),
      is_enabled: filter.equals('is_enabled', Type.Boolean()),
      is_default: filter.equals('is_default', Type.Boolean()),
    },
    uniqueMessage: (constraint) =>
      text(constraint === 'channel_configs_default_live_uq' ? 'detail.channel_default_moved' : 'detail.channel_name_taken'),
    // A config restored beside a newer default of its channel comes back as a non-default, with
    // an audit row of its own for the lost flag (under the channel's lock, as a default change is).
    async beforeRestore(row, { trx, tenant, actor }) {
      if (row.is_default !== true) return;
      await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.channelDefault}, hashtext(${`${tenant.schema}:${String(row.channel)}`}))`.execute(trx);
      const other = await trx.selectFrom('channel_configs').select('id').where('channel', '=', String(row.channel)).where('is_default', '=', true).where('deleted_at', 'is', null).executeTakeFirst();
      if (!other) return;
      await trx.updateTable('channel_configs').set({ is_default: false }).where('id', '=', row.id).execute();
      await writeAudit(trx, actor, { action: 'channel_configs.update', entityType: 'channel_configs', entityId: row.id, before: { is_default: true }, after: { is_default: false }, metadata: { reason: 'restored beside the default of its channel', default_id: other.id } });
    },
    async write(values, _input, ctx) {
      const { before } = ctx;
      const channel = (values.channel ?? before?.channel) as Channel;
      const next = { ...values };
      if (values.config !== undefined) {
        // Updates merge into the current config (secrets included); null removes a field, and a
        // secret sent back as the marker keeps its value.
        const context = channelSecretContext(ctx.tenant.schema, before ? before.id : (next.id = randomUUID()) as string);
        const current = before ? { ...(before.config as Record<string, unknown>), ...storedSecrets(box, before, context, values.config as Record<string, unknown>) } : {};
        const merged: Record<string, unknown> = { ...current };
        for (const [key, value] of Object.entries(values.config as Record<string, unknown>)) {
          if (value === null) delete merged[key];
          else if (value === REDACTED && current[key] !== undefined && current[key] !== REDACTED) continue;
          else if (value === REDACTED) throw DomainError.invalid(`config.${key}`, text('reason.redacted_marker', { marker: REDACTED }));
          else merged[key] = value;
        }
        validateConfig(channel, merged);
        if (before) keepSecretsWithTheirDestination(channel, before.config as Record<string, unknown>, merged, values.config as Record<string, unknown>);
        const { clear, secrets } = splitSecrets(channel, merged);
        next.config = JSON.stringify(clear);
        next.encrypted_secrets = Object.keys(secrets).length ? box.encrypt(secrets, context) : null;
      }
      if (values.is_default === true) await takeDefault(ctx, channel, before?.id);
      return next;
    },
  };
}

/**
 * A stored secret is never sent somewhere new without being given again: changing where a
 * channel delivers (an SMTP host, a webhook URL) while keeping a stored password or token is
 * a 400 naming the secret.
 */
function keepSecretsWithTheirDestination(channel: Channel, stored: Record<string, unknown>, merged: Record<string, unknown>, incoming: Record<string, unknown>): void {
  const moved = (CHANNEL_RULES[channel].destination ?? []).find((k) => JSON.stringify(stored[k] ?? null) !== JSON.stringify(merged[k] ?? null));
  if (!moved) return;
  const kept = CHANNEL_RULES[channel].secrets.find((k) => stored[k] === REDACTED && merged[k] !== undefined && (incoming[k] === undefined || incoming[k] === REDACTED));
  if (kept) throw DomainError.invalid(`config.${kept}`, text('reason.secret_follows_destination', { field: moved }));
}

/**
 * Makes room for a new default of `channel`: one change at a time per channel (an advisory
 * lock), the previous default loses the flag, with its own audit row.
 */
async function takeDefault(ctx: WriteContext, channel: Channel, self: string | undefined): Promise<void> {
  const { trx, tenant, actor, now } = ctx;
  await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.channelDefault}, hashtext(${`${tenant.schema}:${channel}`}))`.execute(trx);
  let others = trx
    .updateTable('channel_configs')
    .set({ is_default: false, updated_at: now, version: sql`version + 1` })
    .where('channel', '=', channel)
    .where('is_default', '=', true)
    .where('deleted_at', 'is', null);
  if (self) others = others.where('id', '!=', self);
  for (const { id } of await others.returning('id').execute()) {
    await writeAudit(trx, actor, { action: 'channel_configs.update', entityType: 'channel_configs', entityId: id, before: { is_default: true }, after: { is_default: false }, metadata: { reason: 'another config became the default', default_id: self ?? null } });
  }
}

function currentSecrets(box: SecretBox, encrypted: string | null, context: string): Record<string, unknown> {
  return encrypted ? (box.decrypt(encrypted, context) as Record<string, unknown>) : {};
}

/**
 * The stored secrets of a row, for an update. When they cannot be decrypted (their key is no
 * longer configured), the update must give every one of them again, or clear it: 409 otherwise.
 */
function storedSecrets(box: SecretBox, row: Record<string, unknown>, context: string, incoming: Record<string, unknown>): Record<string, unknown> {
  try {
    return currentSecrets(box, row.encrypted_secrets as string | null, context);
  } catch {
    const config = row.config as Record<string, unknown>;
    const missing = Object.keys(config).filter((k) => config[k] === REDACTED && (incoming[k] === undefined || incoming[k] === REDACTED));
    if (missing.length) throw DomainError.conflict('channel_config.undecryptable', text('detail.channel_undecryptable', { fields: missing.map((k) => `config.${k}`).join(', ') }));
    return Object.fromEntries(Object.keys(config).filter((k) => config[k] === REDACTED).map((k) => [k, undefined]));
  }
}

/** A config with its secrets in clear, for the code that sends messages (never for a response). */
export function revealConfig(box: SecretBox, schema: string, row: { id: string; config: unknown; encrypted_secrets: string | null }): Record<string, unknown> {
  return { ...(row.config as Record<string, unknown>), ...currentSecrets(box, row.encrypted_secrets, channelSecretContext(schema, row.id)) };
}

