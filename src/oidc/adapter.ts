import { sql, type Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { StatementCache } from '../db/statements.js';
import type { TenantDatabase } from '../db/types.js';

/** What the adapter needs besides its table: the clients, and the links between provider sessions and ours. */
export interface AdapterHooks {
  /** A registered client's metadata for oidc-provider, or undefined. */
  client(id: string): Promise<AdapterPayload | undefined>;
  /** The service session (`user_sessions.id`) the request being handled signs in with, or stands on. */
  sessionOf(uid: string): string | undefined;
  /** A provider session row was deleted: the service session it was linked to, if any. */
  sessionDestroyed(uid: string, sessionId: string | null): Promise<void>;
  /** The request being handled (oidc-provider's context), which rows read along with a token are kept for. */
  request(): object | undefined;
}

/** Models whose rows name their grant (revoked together). */
const GRANT_MODELS = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
/** Tokens read with their grant and their provider session's link, which the token endpoint and userinfo look up next. */
const READ_WITH_GRANT = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken']);

/** Hot statements, built once per shape and schema and prepared (a token request runs several). */
const statements = new StatementCache();

/**
 * Rows read along with a token in one request: its grant (`grant:<id>`, taken once by the
 * grant's own find) and the service session its provider session is linked to (`link:<uid>`).
 * Kept per request object, gone with it; a write of the grant or session drops its entry.
 */
const readAhead = new WeakMap<object, Map<string, AdapterPayload | string | null>>();

function forget(request: object | undefined, key: string): void {
  if (request) readAhead.get(request)?.delete(key);
}

/**
 * The service session linked to the provider session `uid`, as read along with this request's
 * token: a session id, null when the session row links none, undefined when nothing was read.
 */
export function linkReadAhead(request: object | undefined, uid: string): string | null | undefined {
  const value = request ? readAhead.get(request)?.get(`link:${uid}`) : undefined;
  return typeof value === 'string' || value === null ? value : undefined;
}

interface StoredRow {
  readonly payload: unknown;
  readonly expires_at: Date | null;
  readonly consumed_at: Date | null;
}

const expired = (row: StoredRow) => row.expires_at !== null && row.expires_at.getTime() <= Date.now();
const payloadOf = (row: StoredRow): AdapterPayload => {
  const payload = row.payload as AdapterPayload;
  return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
};

/**
 * oidc-provider's storage in the tenant's `oidc_payloads` table: one row per artifact
 * (model, id), its expiry beside it. Expired rows are never answered: a read deletes them, and
 * purgeExpired() sweeps the rest. `Client` is not stored here: clients are `oidc_clients`.
 */
export function kyselyAdapter(db: Kysely<TenantDatabase>, schema: string, hooks: AdapterHooks): new (name: string) => Adapter {
  return class KyselyAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are registered through oidc/clients');
      const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
      const uid = typeof payload.uid === 'string' ? payload.uid : null;
      const sessionId = this.model === 'Session' && uid ? (hooks.sessionOf(uid) ?? null) : null;
      const grantId = GRANT_MODELS.has(this.model) && typeof payload.grantId === 'string' ? payload.grantId : null;
      this.written(id, uid);
      const values = { model: this.model, id, payload: JSON.stringify(payload), grantId, uid, sessionId, expiresAt };
      await statements.run(db, `oidc.upsert:${schema}`, values, (v) =>
        db
          .insertInto('oidc_payloads')
          .values({ model: v.model, id: v.id, payload: v.payload, grant_id: v.grantId, uid: v.uid, session_id: v.sessionId, expires_at: v.expiresAt })
          .onConflict((oc) =>
            oc.columns(['model', 'id']).doUpdateSet((eb) => ({
              payload: eb.ref('excluded.payload'),
              grant_id: eb.ref('excluded.grant_id'),
              uid: eb.ref('excluded.uid'),
              expires_at: eb.ref('excluded.expires_at'),
              session_id: sql<string | null>`coalesce(excluded.session_id, oidc_payloads.session_id)`,
            })),
          ),
      );
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return hooks.client(id);
      if (READ_WITH_GRANT.has(this.model)) return this.readWithGrant(id);
      if (this.model === 'Grant') {
        const request = hooks.request();
        const known = request ? readAhead.get(request)?.get(`grant:${id}`) : undefined;
        if (known && typeof known === 'object') {
          forget(request, `grant:${id}`);
          return known;
        }
      }
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
      this.written(id, null);
      await statements.run(db, `oidc.consume:${schema}`, { model: this.model, id, now: new Date() }, (v) =>
        db.updateTable('oidc_payloads').set({ consumed_at: v.now }).where('model', '=', v.model).where('id', '=', v.id),
      );
    }

    async destroy(id: string): Promise<void> {
      this.written(id, null);
      const { rows } = await statements.run(db, `oidc.destroy:${schema}`, { model: this.model, id }, (v) =>
        db.deleteFrom('oidc_payloads').where('model', '=', v.model).where('id', '=', v.id).returning(['uid', 'session_id']),
      );
      const gone = rows[0];
      if (this.model === 'Session' && gone?.uid) {
        forget(hooks.request(), `link:${gone.uid}`);
        await hooks.sessionDestroyed(gone.uid, gone.session_id);
      }
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      forget(hooks.request(), `grant:${grantId}`);
      await db.deleteFrom('oidc_payloads').where((eb) => eb.or([eb('grant_id', '=', grantId), eb.and([eb('model', '=', 'Grant'), eb('id', '=', grantId)])])).execute();
    }

    /** Drops what this request read ahead of a row being written. */
    private written(id: string, uid: string | null): void {
      const request = hooks.request();
      if (this.model === 'Grant') forget(request, `grant:${id}`);
      if (this.model === 'Session' && uid) forget(request, `link:${uid}`);
    }

    private async read(column: 'id' | 'uid', value: string): Promise<AdapterPayload | undefined> {
      const { rows } = await statements.run(db, `oidc.read:${schema}:${column}`, { model: this.model, value }, (v) =>
        db.selectFrom('oidc_payloads').select(['id', 'payload', 'expires_at', 'consumed_at']).where('model', '=', v.model).where(column, '=', v.value),
      );
      const row = rows[0];
      if (!row) return undefined;
      if (expired(row)) {
        await this.deleteExpired(row.id);
        return undefined;
      }
      return payloadOf(row);
    }

    /**
     * A token with, in the same statement, its grant and the service session linked to its
     * provider session: the token endpoint reads both right after the token, userinfo too.
     */
    private async readWithGrant(id: string): Promise<AdapterPayload | undefined> {
      const { rows } = await statements.run(db, `oidc.read_with_grant:${schema}`, { model: this.model, id }, (v) =>
        db
          .selectFrom('oidc_payloads as t')
          .leftJoin('oidc_payloads as g', (join) => join.on('g.model', '=', 'Grant').onRef('g.id', '=', 't.grant_id'))
          .leftJoin('oidc_payloads as s', (join) => join.on('s.model', '=', 'Session').on('s.uid', '=', sql<string>`t.payload->>'sessionUid'`))
          .select(['t.payload', 't.expires_at', 't.consumed_at', 't.grant_id'])
          .select(['g.payload as grant_payload', 'g.expires_at as grant_expires_at', 'g.consumed_at as grant_consumed_at'])
          .select(['s.uid as session_uid', 's.session_id'])
          .where('t.model', '=', v.model)
          .where('t.id', '=', v.id),
      );
      const row = rows[0];
      if (!row) return undefined;
      if (expired(row)) {
        await this.deleteExpired(id);
        return undefined;
      }
      const request = hooks.request();
      if (request) {
        let kept = readAhead.get(request);
        if (!kept) readAhead.set(request, (kept = new Map()));
        const grant = { payload: row.grant_payload, expires_at: row.grant_expires_at, consumed_at: row.grant_consumed_at };
        // An expired grant is left to its own read, which deletes it.
        if (row.grant_id && grant.payload !== null && !expired(grant)) kept.set(`grant:${row.grant_id}`, payloadOf(grant));
        if (row.session_uid) kept.set(`link:${row.session_uid}`, row.session_id);
      }
      return payloadOf(row);
    }

    private async deleteExpired(id: string): Promise<void> {
      await statements.run(db, `oidc.delete:${schema}`, { model: this.model, id }, (v) => db.deleteFrom('oidc_payloads').where('model', '=', v.model).where('id', '=', v.id));
    }
  };
}

/** Deletes a tenant's expired rows (the periodic sweep); answers how many went. */
export async function purgeExpired(db: Kysely<TenantDatabase>): Promise<number> {
  const result = await db.deleteFrom('oidc_payloads').where('expires_at', '<=', new Date()).executeTakeFirst();
  return Number(result.numDeletedRows);
}
