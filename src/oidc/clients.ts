import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import { randomToken, sha256 } from '../auth/tokens.js';
import type { Change, ChangeListener, Changes } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import { once, type Outcome } from '../db/idempotency.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { checkVersion, DomainError, FieldChecks, text } from '../errors.js';
import type { TenantContext } from '../tenancy/directory.js';

export const CLIENT_TYPES = ['public', 'confidential'] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];
export const CLIENT_GRANT_TYPES = ['authorization_code', 'refresh_token'] as const;

const COLUMNS = ['id', 'name', 'type', 'redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'version', 'created_at', 'updated_at'] as const;

export interface ClientInput {
  name?: string;
  type?: ClientType;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
}

/** A client as the API shows it: `client_id` is its id; the secret is never shown again after creation. */
export interface ClientView {
  readonly id: string;
  readonly client_id: string;
  readonly name: string;
  readonly type: ClientType;
  readonly redirect_uris: string[];
  readonly post_logout_redirect_uris: string[];
  readonly grant_types: string[];
  readonly version: number;
  readonly created_at: Date;
  readonly updated_at: Date;
}

/** What the provider reads of a client (oidc-provider's client metadata, secret as its hash). */
export interface ClientRecord extends ClientView {
  readonly client_secret_hash: string | null;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * A redirect (or post-logout redirect) URI a client may register: absolute, no fragment, no
 * credentials; https, or http on a loopback host (development); a public client (a native app)
 * may also use its own private-use scheme (`com.example.app:/callback`, RFC 8252).
 */
export function checkRedirectUri(value: string, type: ClientType, field: string, checks: FieldChecks): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    checks.fail(field, text('reason.redirect_uri_invalid'));
    return undefined;
  }
  if (url.hash || value.includes('#') || url.username || url.password) {
    checks.fail(field, text('reason.redirect_uri_invalid'));
    return undefined;
  }
  const scheme = url.protocol.slice(0, -1);
  const web = scheme === 'https' || (scheme === 'http' && LOOPBACK.has(url.hostname));
  const privateUse = type === 'public' && /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$/.test(scheme);
  if (!web && !privateUse) {
    checks.fail(field, text('reason.redirect_uri_scheme'));
    return undefined;
  }
  return value;
}

function checkUris(values: readonly string[], type: ClientType, field: string, checks: FieldChecks): string[] {
  return [...new Set(values.map((v) => v.trim()))].map((v) => checkRedirectUri(v, type, field, checks)).filter((v): v is string => v !== undefined);
}

function checkGrantTypes(values: readonly string[], checks: FieldChecks): string[] {
  const unique = [...new Set(values)];
  if (!unique.includes('authorization_code')) checks.fail('grant_types', text('reason.grant_types_code'));
  return unique;
}

const view = (row: Omit<ClientRecord, 'client_id' | 'client_secret_hash'>): ClientView => ({ ...row, type: row.type, client_id: row.id });

/** A client's cached record; with no id, the prefix of every client's of the tenant. */
const clientKey = (tenant: TenantContext, id: string) => `oidc_client:${tenant.schema}:${id}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `oidc/clients`: the applications that may sign the tenant's users in (docs/OIDC.md). The
 * provider reads a client on every request: its record is cached, and dropped (here and on every
 * instance) when the client is changed or deleted, or the whole tenant changes.
 */
export class OidcClientService implements ChangeListener {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
    changes: Changes,
  ) {
    changes.listen(this);
  }

  /** A restored, deleted or suspended tenant's clients are read again (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    return change.kind === 'tenant' ? this.local.invalidate(clientKey(tenant, '')) : undefined;
  }

  async list(tenant: TenantContext, query: { page: number; page_size: number }) {
    const db = tenantDb(this.db, tenant.schema);
    const [rows, total] = await Promise.all([
      db.selectFrom('oidc_clients').select(COLUMNS).orderBy('created_at').orderBy('id').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      db.selectFrom('oidc_clients').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map((r) => view(r as ClientRecord)), total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  async get(tenant: TenantContext, id: string): Promise<ClientView> {
    return view(await this.one(tenantDb(this.db, tenant.schema), id));
  }

  /** The client as the provider needs it, or undefined (an id that is no uuid is simply unknown). */
  async record(tenant: TenantContext, id: string): Promise<ClientRecord | undefined> {
    if (!UUID.test(id)) return undefined;
    return this.local.load(clientKey(tenant, id), async () => {
      const row = await tenantDb(this.db, tenant.schema).selectFrom('oidc_clients').select([...COLUMNS, 'client_secret_hash']).where('id', '=', id).executeTakeFirst();
      return row ? { ...(row as ClientRecord), client_id: row.id } : undefined;
    });
  }

  /** Registers a client; a confidential one's secret is in this answer only (stored as its SHA-256). */
  async create(tenant: TenantContext, input: ClientInput & { name: string; type: ClientType; redirect_uris: string[] }, actor: AuditActor): Promise<Outcome<ClientView & { client_secret?: string }>> {
    const checks = new FieldChecks();
    const redirectUris = checkUris(input.redirect_uris, input.type, 'redirect_uris', checks);
    const logoutUris = checkUris(input.post_logout_redirect_uris ?? [], input.type, 'post_logout_redirect_uris', checks);
    const grantTypes = checkGrantTypes(input.grant_types ?? [...CLIENT_GRANT_TYPES], checks);
    checks.done();
    const secret = input.type === 'confidential' ? randomToken('ocs_') : undefined;
    return once(tenantDb(this.db, tenant.schema), undefined, async (trx) => {
      const id = randomUUID();
      const row = await trx
        .insertInto('oidc_clients')
        .values({ id, name: input.name.trim(), type: input.type, client_secret_hash: secret ? sha256(secret) : null, redirect_uris: redirectUris, post_logout_redirect_uris: logoutUris, grant_types: grantTypes })
        .returning(COLUMNS)
        .executeTakeFirstOrThrow();
      await writeAudit(trx, actor, { action: 'oidc_clients.create', entityType: 'oidc_clients', entityId: id, after: row });
      return { status: 201, body: { ...view(row as ClientRecord), ...(secret ? { client_secret: secret } : {}) } };
    });
  }

  async update(tenant: TenantContext, id: string, input: ClientInput, expected: number | undefined, actor: AuditActor): Promise<ClientView> {
    const updated = await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        const type = before.type as ClientType;
        const checks = new FieldChecks();
        const redirectUris = input.redirect_uris !== undefined ? checkUris(input.redirect_uris, type, 'redirect_uris', checks) : undefined;
        const logoutUris = input.post_logout_redirect_uris !== undefined ? checkUris(input.post_logout_redirect_uris, type, 'post_logout_redirect_uris', checks) : undefined;
        const grantTypes = input.grant_types !== undefined ? checkGrantTypes(input.grant_types, checks) : undefined;
        checks.done();
        const after = await trx
          .updateTable('oidc_clients')
          .set({
            ...(input.name !== undefined ? { name: input.name.trim() } : {}),
            ...(redirectUris ? { redirect_uris: redirectUris } : {}),
            ...(logoutUris ? { post_logout_redirect_uris: logoutUris } : {}),
            ...(grantTypes ? { grant_types: grantTypes } : {}),
            updated_at: new Date(),
            version: sql`version + 1`,
          })
          .where('id', '=', id)
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await writeAudit(trx, actor, { action: 'oidc_clients.update', entityType: 'oidc_clients', entityId: id, before, after });
        return view(after as ClientRecord);
      });
    await this.local.invalidate(clientKey(tenant, id));
    return updated;
  }

  /** Deletes the client with every grant, code and token issued to it. */
  async remove(tenant: TenantContext, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        await trx.deleteFrom('oidc_clients').where('id', '=', id).execute();
        await trx.deleteFrom('oidc_payloads').where(sql<string>`payload->>'clientId'`, '=', id).execute();
        await writeAudit(trx, actor, { action: 'oidc_clients.delete', entityType: 'oidc_clients', entityId: id, before });
      });
    await this.local.invalidate(clientKey(tenant, id));
  }

  private async one(db: Kysely<TenantDatabase>, id: string, lock = false) {
    let query = db.selectFrom('oidc_clients').select(COLUMNS).where('id', '=', id);
    if (lock) query = query.forUpdate();
    const row = await query.executeTakeFirst();
    if (!row) throw DomainError.notFound('oidc_client');
    return row as Omit<ClientRecord, 'client_id' | 'client_secret_hash'>;
  }
}
