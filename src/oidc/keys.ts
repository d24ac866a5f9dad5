import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { sql, type Kysely } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import type { SecretBox } from '../records/secrets.js';
import type { TenantContext } from '../tenancy/directory.js';

export const SIGNING_ALG = 'RS256';

/**
 * How long a cached provider keeps its keystore: every instance reloads the keys within it, so
 * a key published by a rotation is known everywhere before it starts signing.
 */
export const KEYSTORE_MAX_AGE_MS = 60_000;
/** A rotation's new key is published at once and signs after this (every instance has it by then). */
export const ROTATION_PROPAGATION_MS = 2 * KEYSTORE_MAX_AGE_MS;
/** The longest an ID or access token lives (the provider's TTLs): a retired key stays published this much longer. */
export const LONGEST_TOKEN_MS = 3_600_000;

/** One key of a tenant's keystore: the private JWK (for oidc-provider) and when its role changes next. */
export interface TenantKeystore {
  /** The signing key first, then the keys kept only for verification (`key_ops: ['verify']`). */
  readonly keys: JWK[];
  /** When this keystore stops being right (a key starts or stops signing, or leaves the JWKS). */
  readonly validUntil: number;
}

export interface KeyView {
  readonly kid: string;
  readonly alg: string;
  readonly created_at: Date;
  readonly retired_at: Date | null;
  readonly published_until: Date | null;
}

const context = (schema: string, kid: string) => `oidc_signing_keys:${schema}:${kid}`;

/**
 * Each tenant's signing keys (RS256), the private halves encrypted with the service's secret
 * box. The first is made on demand; a rotation publishes a new key at once, lets it sign after
 * ROTATION_PROPAGATION_MS, and keeps the old one in the JWKS until the tokens it signed expire.
 */
export class OidcKeyService {
  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly secrets: SecretBox,
  ) {}

  /** The tenant's keystore as oidc-provider takes it; makes the first key when there is none. */
  async keystore(tenant: TenantContext, now = Date.now()): Promise<TenantKeystore> {
    let rows = await this.published(tenant, now);
    if (!rows.some((r) => r.retired_at === null)) {
      await this.insertKey(tenant).catch((error: unknown) => {
        // Another instance made it first (one current key per algorithm).
        if ((error as { code?: string }).code !== '23505') throw error;
      });
      rows = await this.published(tenant, now);
    }
    // The signer: a key whose retirement is still ahead (a rotation's old key, until the new one may sign), else the current one.
    const signer = rows.find((r) => r.retired_at !== null && r.retired_at.getTime() > now) ?? rows.find((r) => r.retired_at === null)!;
    const keys = [signer, ...rows.filter((r) => r !== signer)].map((r) => {
      const jwk = this.secrets.decrypt(r.encrypted_private_jwk, context(tenant.schema, r.kid)) as JWK;
      return { ...jwk, kid: r.kid, alg: r.alg, use: 'sig', ...(r === signer ? {} : { key_ops: ['verify'] }) };
    });
    const boundaries = rows.flatMap((r) => [r.retired_at?.getTime(), r.published_until?.getTime()]).filter((t): t is number => t !== undefined && t > now);
    return { keys, validUntil: Math.min(now + KEYSTORE_MAX_AGE_MS, ...boundaries) };
  }

  async list(tenant: TenantContext): Promise<KeyView[]> {
    return tenantDb(this.db, tenant.schema).selectFrom('oidc_signing_keys').select(['kid', 'alg', 'created_at', 'retired_at', 'published_until']).orderBy('created_at', 'desc').execute();
  }

  /**
   * A new signing key: published at once, signing after ROTATION_PROPAGATION_MS; the current
   * one signs until then and stays published until the tokens it signed have expired.
   */
  async rotate(tenant: TenantContext, actor: AuditActor): Promise<KeyView> {
    const db = tenantDb(this.db, tenant.schema);
    return db.transaction().execute(async (trx) => {
      const retiredAt = new Date(Date.now() + ROTATION_PROPAGATION_MS);
      const old = await trx
        .updateTable('oidc_signing_keys')
        .set({ retired_at: retiredAt, published_until: new Date(retiredAt.getTime() + LONGEST_TOKEN_MS), updated_at: new Date() })
        .where('retired_at', 'is', null)
        .returning('kid')
        .execute();
      const key = await this.insertKey(tenant, trx);
      await writeAudit(trx, actor, { action: 'oidc_signing_keys.rotate', entityType: 'oidc_signing_keys', metadata: { kid: key.kid, retired: old.map((o) => o.kid) } });
      return key;
    });
  }

  /** Keys out of the JWKS for a day: deleted (the periodic purge). */
  async purge(tenant: TenantContext): Promise<number> {
    const result = await tenantDb(this.db, tenant.schema)
      .deleteFrom('oidc_signing_keys')
      .where('published_until', '<', sql<Date>`now() - interval '1 day'`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  private async published(tenant: TenantContext, now: number) {
    return tenantDb(this.db, tenant.schema)
      .selectFrom('oidc_signing_keys')
      .select(['kid', 'alg', 'encrypted_private_jwk', 'retired_at', 'published_until', 'created_at'])
      .where((eb) => eb.or([eb('published_until', 'is', null), eb('published_until', '>', new Date(now))]))
      .orderBy('created_at', 'desc')
      .execute();
  }

  private async insertKey(tenant: TenantContext, db: Kysely<TenantDatabase> = tenantDb(this.db, tenant.schema)): Promise<KeyView> {
    const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = await exportJWK(privateKey);
    return db
      .insertInto('oidc_signing_keys')
      .values({ kid, alg: SIGNING_ALG, public_jwk: JSON.stringify({ ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' }), encrypted_private_jwk: this.secrets.encrypt(privateJwk, context(tenant.schema, kid)) })
      .returning(['kid', 'alg', 'created_at', 'retired_at', 'published_until'])
      .executeTakeFirstOrThrow();
  }
}
