import { randomBytes, randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { writeAudit, type AuditActor } from '../../audit/audit.js';
import { tenantDb } from '../../db/database.js';
import { once } from '../../db/idempotency.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import type { TenantDatabase } from '../../db/types.js';
import { checkVersion, DomainError, FieldChecks, text } from '../../errors.js';
import { webhookSecretContext, type SecretBox } from '../../records/secrets.js';
import type { TenantContext } from '../../tenancy/directory.js';
import { EVENT_TYPES } from '../catalogue.js';
import { checkTarget } from './target.js';

const COLUMNS = ['id', 'url', 'events', 'description', 'enabled', 'failing_since', 'disabled_reason', 'created_at', 'updated_at', 'version'] as const;
const DELIVERY_COLUMNS = ['id', 'webhook_id', 'event_id', 'event_type', 'status', 'attempts', 'last_status_code', 'last_error', 'next_attempt_at', 'delivered_at', 'created_at', 'updated_at'] as const;
export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'] as const;

const SYSTEM: AuditActor = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: null, requestId: null };

/** How long the secret a rotation replaced still signs beside the new one. */
const ROTATION_OVERLAP_MS = 24 * 3_600_000;

export interface WebhookInput {
  url?: string;
  events?: string[];
  description?: string | null;
  enabled?: boolean;
}

/** A webhook's secrets as stored (encrypted): the current one and, for a day after a rotation, the one before. */
export interface WebhookSecrets {
  readonly current: string;
  readonly previous?: string;
  readonly previous_until?: string;
}

/** `whsec_` and 32 random bytes in base64, as Standard Webhooks libraries expect. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The event type prefixes a filter may name (`user.*`). */
const PREFIXES = new Set(EVENT_TYPES.map((t) => t.slice(0, t.indexOf('.'))));

function checkEvents(events: readonly string[], checks: FieldChecks): string[] {
  const unique = [...new Set(events.map((e) => e.trim()))];
  if (unique.length === 0) checks.fail('events', text('reason.event_types_empty'));
  for (const e of unique) {
    const known = e === '*' || EVENT_TYPES.includes(e) || (e.endsWith('.*') && PREFIXES.has(e.slice(0, -2)));
    if (!known) checks.fail('events', text('reason.event_type_unknown', { type: e }));
  }
  return unique;
}

export interface WebhookOptions {
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: targets on private, loopback and link-local addresses. */
  readonly allowPrivateNetworks: boolean;
}

/** A tenant's webhook endpoints, their secrets and their delivery log. */
export class WebhookService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly secrets: SecretBox,
    private readonly options: WebhookOptions,
  ) {}

  async list(tenant: TenantContext, query: { page: number; page_size: number }) {
    const db = tenantDb(this.db, tenant.schema);
    const [items, total] = await Promise.all([
      db.selectFrom('webhooks').select(COLUMNS).orderBy('created_at').orderBy('id').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      db.selectFrom('webhooks').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  get(tenant: TenantContext, id: string) {
    return this.one(tenantDb(this.db, tenant.schema), id);
  }

  /** Creates an endpoint; its secret is in this answer only (never stored in clear, not even for an idempotent replay). */
  async create(tenant: TenantContext, input: WebhookInput & { url: string; events: string[] }, actor: AuditActor) {
    const checks = new FieldChecks();
    const events = checkEvents(input.events, checks);
    checks.done();
    const url = (await checkTarget(input.url, this.options.allowPrivateNetworks)).url.toString();
    return once(tenantDb(this.db, tenant.schema), undefined, async (trx) => {
      const id = randomUUID();
      const secret = newSecret();
      const row = await trx
        .insertInto('webhooks')
        .values({ id, url, events, description: input.description?.trim() || null, enabled: input.enabled ?? true, encrypted_secret: this.seal(tenant, id, { current: secret }) })
        .returning(COLUMNS)
        .executeTakeFirstOrThrow();
      await writeAudit(trx, actor, { action: 'webhooks.create', entityType: 'webhooks', entityId: id, after: row });
      return { status: 201, body: { ...row, secret } };
    });
  }

  async update(tenant: TenantContext, id: string, input: WebhookInput, expected: number | undefined, actor: AuditActor) {
    const checks = new FieldChecks();
    const events = input.events !== undefined ? checkEvents(input.events, checks) : undefined;
    checks.done();
    const url = input.url !== undefined ? (await checkTarget(input.url, this.options.allowPrivateNetworks)).url.toString() : undefined;
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        const after = await trx
          .updateTable('webhooks')
          .set({
            ...(url !== undefined ? { url } : {}),
            ...(events !== undefined ? { events } : {}),
            ...(input.description !== undefined ? { description: input.description?.trim() || null } : {}),
            // Enabled again: its failures start over.
            ...(input.enabled !== undefined ? { enabled: input.enabled, ...(input.enabled ? { failing_since: null, disabled_reason: null } : {}) } : {}),
            updated_at: new Date(),
            version: sql`version + 1`,
          })
          .where('id', '=', id)
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await writeAudit(trx, actor, { action: 'webhooks.update', entityType: 'webhooks', entityId: id, before, after });
        return after;
      });
  }

  /** Deletes the endpoint and its delivery log; pending deliveries are dropped. */
  async remove(tenant: TenantContext, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        await trx.deleteFrom('webhooks').where('id', '=', id).execute();
        await writeAudit(trx, actor, { action: 'webhooks.delete', entityType: 'webhooks', entityId: id, before });
      });
  }

  /** A new secret; the one it replaces still signs beside it for a day, so receivers can switch. */
  async rotateSecret(tenant: TenantContext, id: string, actor: AuditActor): Promise<{ secret: string }> {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const row = await trx.selectFrom('webhooks').select(['id', 'encrypted_secret']).where('id', '=', id).forUpdate().executeTakeFirst();
        if (!row) throw DomainError.notFound('webhook');
        const old = this.open(tenant.schema, row);
        const secret = newSecret();
        const sealed = this.seal(tenant, id, { current: secret, previous: old.current, previous_until: new Date(Date.now() + ROTATION_OVERLAP_MS).toISOString() });
        await trx.updateTable('webhooks').set({ encrypted_secret: sealed, updated_at: new Date(), version: sql`version + 1` }).where('id', '=', id).execute();
        await writeAudit(trx, actor, { action: 'webhooks.rotate_secret', entityType: 'webhooks', entityId: id });
        return { secret };
      });
  }

  async deliveries(tenant: TenantContext, id: string, query: { page: number; page_size: number; status?: (typeof DELIVERY_STATUSES)[number] }) {
    const db = tenantDb(this.db, tenant.schema);
    await this.one(db, id);
    let base = db.selectFrom('webhook_deliveries').where('webhook_id', '=', id);
    if (query.status) base = base.where('status', '=', query.status);
    const [items, total] = await Promise.all([
      base.select(DELIVERY_COLUMNS).orderBy('event_seq', 'desc').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  /** Sends a delivery again (pending, due now), whatever its state; the dispatcher hears of it at once. */
  async retry(tenant: TenantContext, id: string, deliveryId: string, actor: AuditActor) {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await this.one(trx, id);
        const row = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'pending', next_attempt_at: new Date(), updated_at: new Date() })
          .where('id', '=', deliveryId)
          .where('webhook_id', '=', id)
          .returning(DELIVERY_COLUMNS)
          .executeTakeFirst();
        if (!row) throw DomainError.notFound('webhook_delivery');
        // Audited without an event of its own (the delivery is the event's, sent again).
        await writeAudit(trx, actor, { action: 'webhooks.retry_delivery', entityType: 'webhooks', entityId: id, metadata: { delivery_id: deliveryId, event_id: row.event_id } });
        await signal(trx, tenant.schema);
        return row;
      });
  }

  /** A delivery succeeded: the endpoint's failures are over. */
  async healthy(schema: string, id: string): Promise<void> {
    await tenantDb(this.db, schema).updateTable('webhooks').set({ failing_since: null }).where('id', '=', id).execute();
  }

  /**
   * A delivery failed: the endpoint is failing since its first failure after a success, and
   * disabled (audited as the system, with its `webhook.disabled` event) once that is longer ago
   * than `disableAfterMs`.
   */
  async failing(schema: string, id: string, lastError: string, disableAfterMs: number): Promise<void> {
    await tenantDb(this.db, schema)
      .transaction()
      .execute(async (trx) => {
        const hook = await trx.updateTable('webhooks').set({ failing_since: sql`coalesce(failing_since, now())` }).where('id', '=', id).returning(['enabled', 'failing_since']).executeTakeFirst();
        if (!hook?.enabled || !hook.failing_since || Date.now() - hook.failing_since.getTime() < disableAfterMs) return;
        const reason = `failing since ${hook.failing_since.toISOString()} (last: ${lastError})`;
        const after = await trx
          .updateTable('webhooks')
          .set({ enabled: false, disabled_reason: reason, updated_at: new Date(), version: sql`version + 1` })
          .where('id', '=', id)
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await writeAudit(trx, SYSTEM, { action: 'webhooks.disable', entityType: 'webhooks', entityId: id, after, metadata: { reason } });
      });
  }

  /** The secrets of a webhook row, decrypted. */
  open(schema: string, row: { id: string; encrypted_secret: string }): WebhookSecrets {
    return this.secrets.decrypt(row.encrypted_secret, webhookSecretContext(schema, row.id)) as WebhookSecrets;
  }

  private seal(tenant: TenantContext, id: string, secrets: WebhookSecrets): string {
    return this.secrets.encrypt(secrets, webhookSecretContext(tenant.schema, id));
  }

  private async one(db: Kysely<TenantDatabase> | Transaction<TenantDatabase>, id: string, lock = false) {
    let q = db.selectFrom('webhooks').select(COLUMNS).where('id', '=', id);
    if (lock) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw DomainError.notFound('webhook');
    return row;
  }
}

/** Tells every dispatcher the tenant has work due now (with the change, in its transaction). */
export async function signal(trx: Transaction<TenantDatabase>, schema: string): Promise<void> {
  await sql`INSERT INTO shared.event_signals (schema_name) VALUES (${schema})`.execute(trx);
}
