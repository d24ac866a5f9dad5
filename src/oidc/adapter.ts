import { sql, type Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { TenantDatabase } from '../db/types.js';

/** What the adapter needs besides its table: the clients, and the links between provider sessions and ours. */
export interface AdapterHooks {
  /** A registered client's metadata for oidc-provider, or undefined. */
  client(id: string): Promise<AdapterPayload | undefined>;
  /** The service session (`user_sessions.id`) the request being handled signs in with, or stands on. */
  sessionOf(uid: string): string | undefined;
  /** A provider session row was deleted: the service session it was linked to, if any. */
  sessionDestroyed(uid: string, sessionId: string | null): Promise<void>;
}

/** Models whose rows name their grant (revoked together). */
const GRANT_MODELS = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * oidc-provider's storage in the tenant's `oidc_payloads` table: one row per artifact
 * (model, id), its expiry beside it. Expired rows are never answered: a read deletes them, and
 * purgeExpired() sweeps the rest. `Client` is not stored here: clients are `oidc_clients`.
 */
export function kyselyAdapter(db: Kysely<TenantDatabase>, hooks: AdapterHooks): new (name: string) => Adapter {
  return class KyselyAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are registered through oidc/clients');
      const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
      const uid = typeof payload.uid === 'string' ? payload.uid : null;
      const sessionId = this.model === 'Session' && uid ? (hooks.sessionOf(uid) ?? null) : null;
      const grantId = GRANT_MODELS.has(this.model) && typeof payload.grantId === 'string' ? payload.grantId : null;
      await db
        .insertInto('oidc_payloads')
        .values({ model: this.model, id, payload: JSON.stringify(payload), grant_id: grantId, uid, session_id: sessionId, expires_at: expiresAt })
        .onConflict((oc) =>
          oc.columns(['model', 'id']).doUpdateSet((eb) => ({
            payload: eb.ref('excluded.payload'),
            grant_id: eb.ref('excluded.grant_id'),
            uid: eb.ref('excluded.uid'),
            expires_at: eb.ref('excluded.expires_at'),
            session_id: sql<string | null>`coalesce(excluded.session_id, oidc_payloads.session_id)`,
          })),
        )
        .execute();
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return hooks.client(id);
      return this.read('id', id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.read('uid', uid);
    }

    /** Device flow is off: no user codes. */
    async findByUserCode(): Promise<AdapterPayload | undefined> {
      return undefined;
    }

    async consume(id: string): Promise<void> {
      await db.updateTable('oidc_payloads').set({ consumed_at: new Date() }).where('model', '=', this.model).where('id', '=', id).execute();
    }

    async destroy(id: string): Promise<void> {
      const gone = await db.deleteFrom('oidc_payloads').where('model', '=', this.model).where('id', '=', id).returning(['uid', 'session_id']).executeTakeFirst();
      if (this.model === 'Session' && gone?.uid) await hooks.sessionDestroyed(gone.uid, gone.session_id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await db.deleteFrom('oidc_payloads').where((eb) => eb.or([eb('grant_id', '=', grantId), eb.and([eb('model', '=', 'Grant'), eb('id', '=', grantId)])])).execute();
    }

    private async read(column: 'id' | 'uid', value: string): Promise<AdapterPayload | undefined> {
      const row = await db.selectFrom('oidc_payloads').select(['id', 'payload', 'expires_at', 'consumed_at']).where('model', '=', this.model).where(column, '=', value).executeTakeFirst();
      if (!row) return undefined;
      if (row.expires_at !== null && row.expires_at.getTime() <= Date.now()) {
        await db.deleteFrom('oidc_payloads').where('model', '=', this.model).where('id', '=', row.id).execute();
        return undefined;
      }
      const payload = row.payload as AdapterPayload;
      return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
    }
  };
}

/** Deletes a tenant's expired rows (the periodic sweep); answers how many went. */
export async function purgeExpired(db: Kysely<TenantDatabase>): Promise<number> {
  const result = await db.deleteFrom('oidc_payloads').where('expires_at', '<=', new Date()).executeTakeFirst();
  return Number(result.numDeletedRows);
}
