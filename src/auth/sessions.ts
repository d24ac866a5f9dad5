import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { sql, type Kysely, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import type { AuditActor } from '../audit/audit.js';
import type { Change, Changes } from '../cache/changes.js';
import type { LocalCache } from '../cache/local.js';
import { withAuditRow } from '../db/audit-chain.js';
import { tenantDb } from '../db/database.js';
import { StatementCache } from '../db/statements.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import type { Work } from '../db/work.js';
import type { TenantPolicy } from '../settings/policy.js';
import type { TenantContext } from '../tenancy/directory.js';
import { randomSecret, sha256 } from './tokens.js';

const REFRESH_PREFIX = 'rt_';
const SESSION_ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const SESSION_ID_ONLY = new RegExp(`^${SESSION_ID}$`);

/**
 * A refresh token: `rt_`, its session's id, `.`, then 256 random bits and a 128-bit tag (an
 * HMAC of the session id and those bits under a server key), base64url. Opaque to clients; only
 * its SHA-256 is stored. The tag proves the service issued the token for that session, so a
 * token that is authentic but no longer the session's current one is a retired token presented
 * again (the whole session is revoked), with no record of retired tokens kept; a made-up one is
 * merely invalid. Tokens of the previous release (`{43}`, no tag) still rotate.
 */
const REFRESH_TOKEN = new RegExp(`^${REFRESH_PREFIX}(${SESSION_ID})\\.([A-Za-z0-9_-]{64}|[A-Za-z0-9_-]{43})$`);
const TAG_BYTES = 16;
const TAGGED_LENGTH = `${REFRESH_PREFIX}00000000-0000-0000-0000-000000000000.`.length + 64;

/** Sessions last used before this are idle: no longer live. One clock, the service's, decides it everywhere. */
const idleCutoff = (policy: TenantPolicy, now: number) => now - policy.idleTimeoutMinutes * 60_000;

const tagOf = (key: Buffer, sessionId: string, random: Buffer) => createHmac('sha256', key).update(sessionId).update(random).digest().subarray(0, TAG_BYTES);

interface SessionState {
  readonly userId: string;
  readonly revoked: boolean;
  readonly expiresAt: number;
  readonly lastSeenAt: number;
}

interface UserState {
  readonly active: boolean;
  /** The user's `locale` (§15: the first choice of an answer's language). */
  readonly locale: string | null;
}

type SessionUpdate = UpdateQueryBuilder<TenantDatabase, 'user_sessions', 'user_sessions', UpdateResult>;

const sessionKey = (tenant: TenantContext, sessionId: string) => `session:${tenant.schema}:${sessionId}`;
const userKey = (tenant: TenantContext, userId: string) => `user:${tenant.schema}:${userId}`;

/** A session is live while it is not revoked, bound to this user, not expired and not idle; its user active. */
function live(session: SessionState | null, user: UserState, userId: string, policy: TenantPolicy): boolean {
  if (!session || !user.active || session.revoked || session.userId !== userId) return false;
  const now = Date.now();
  return session.expiresAt > now && session.lastSeenAt > idleCutoff(policy, now);
}

export type RotateResult =
  | { readonly kind: 'rotated'; readonly sessionId: string; readonly userId: string; readonly refreshToken: string }
  | { readonly kind: 'reused'; readonly sessionId: string; readonly userId: string }
  | { readonly kind: 'invalid' };

/**
 * Sessions and the per-request checks on them. A session is live while not revoked, before
 * its absolute expiry, and used within the idle timeout (refreshes count as use). Session and
 * user states are cached; every revocation invalidates them on all instances.
 */
export class SessionStore {
  private readonly statements = new StatementCache();

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly local: LocalCache,
    /** Key of the refresh tokens' tags. */
    private readonly tagKey: Buffer,
    changes: Changes,
  ) {
    changes.listen(this);
  }

  private refreshTokenOf(sessionId: string): string {
    const random = randomSecret();
    return `${REFRESH_PREFIX}${sessionId}.${Buffer.concat([random, tagOf(this.tagKey, sessionId, random)]).toString('base64url')}`;
  }

  /** Whether the service issued `token` (a tagged one) for `sessionId`. */
  private issued(sessionId: string, token: string): boolean {
    const secret = Buffer.from(token.slice(token.indexOf('.') + 1), 'base64url');
    if (secret.length !== 32 + TAG_BYTES) return false;
    return timingSafeEqual(secret.subarray(32), tagOf(this.tagKey, sessionId, secret.subarray(0, 32)));
  }

  /** A new session's row and its refresh token (the caller inserts the row with its login). */
  newSession(input: { userId: string; ip: string | null; userAgent: string | null; policy: TenantPolicy }) {
    const id = randomUUID();
    const refreshToken = this.refreshTokenOf(id);
    const row = {
      id,
      user_id: input.userId,
      refresh_token_hash: sha256(refreshToken),
      ip_address: input.ip,
      user_agent: input.userAgent?.slice(0, 1000) ?? null,
      expires_at: new Date(Date.now() + input.policy.absoluteTimeoutHours * 3_600_000),
    };
    return { row, refreshToken };
  }

  /**
   * Rotates a refresh token in one statement: a conditional UPDATE (of concurrent refreshes of
   * one token exactly one matches the row; the others find it already rotated and count as
   * reuse) and the `auth.refresh` audit row. The token names its session, so the row is found by
   * primary key and the hashes need no index on user_sessions: the UPDATE changes no indexed
   * column and stays on its page (a HOT update, no index entries written).
   */
  async rotate(tenant: TenantContext, presented: string, policy: TenantPolicy, actor: AuditActor): Promise<RotateResult> {
    const id = REFRESH_TOKEN.exec(presented)?.[1];
    if (!id) return { kind: 'invalid' };
    const db = tenantDb(this.db, tenant.schema);
    const hash = sha256(presented);
    const next = this.refreshTokenOf(id);
    const now = new Date();
    const values = { id, auditId: randomUUID(), hash, next: sha256(next), now, idleCutoff: new Date(idleCutoff(policy, now.getTime())), ip: actor.ip, userAgent: actor.userAgent?.slice(0, 1000) ?? null, requestId: actor.requestId };
    // Built once per schema and prepared: a refresh is a hot path. The previous hash is kept for
    // the untagged tokens of the previous release, whose reuse it still recognises.
    const { rows } = await this.statements.run(db, `sessions.rotate:${tenant.schema}`, values, (v) =>
      withAuditRow(
        db.with('rotated', (q) =>
          q
            .updateTable('user_sessions')
            .set({ previous_refresh_token_hash: v.hash, refresh_token_hash: v.next, last_seen_at: v.now, updated_at: v.now })
            .where('id', '=', v.id)
            .where('refresh_token_hash', '=', v.hash)
            .where('revoked_at', 'is', null)
            .where('expires_at', '>', v.now)
            .where('last_seen_at', '>', v.idleCutoff)
            .returning('user_id'),
        ),
        // The audit row only when the token rotated: `when` holds back both the row and the chain's step.
        {
              id: v.auditId,
              created_at: v.now,
              actor_user_id: sql`(SELECT user_id FROM rotated)`,
              actor_type: 'user',
              session_id: v.id,
              ip_address: v.ip,
              user_agent: v.userAgent,
              request_id: v.requestId,
              action: 'auth.refresh',
              entity_type: 'user_sessions',
              entity_id: v.id,
              before: null,
              after: null,
              metadata: '{}',
            },
        sql`EXISTS (SELECT 1 FROM rotated)`,
      )
        .selectFrom('rotated')
        .select('user_id'),
    );
    const rotated = rows[0];
    if (rotated) {
      await this.local.invalidate(sessionKey(tenant, id)); // last_seen_at moved
      return { kind: 'rotated', sessionId: id, userId: rotated.user_id, refreshToken: next };
    }
    // An authentic token that is not the live session's current one was retired: reuse. A
    // made-up secret is merely invalid (untagged tokens: only the one just before counts).
    const tagged = presented.length === TAGGED_LENGTH;
    if (tagged && !this.issued(id, presented)) return { kind: 'invalid' };
    let query = db.selectFrom('user_sessions').select('user_id').where('id', '=', id).where('revoked_at', 'is', null);
    if (!tagged) query = query.where('previous_refresh_token_hash', '=', hash);
    const reused = await query.executeTakeFirst();
    return reused ? { kind: 'reused', sessionId: id, userId: reused.user_id } : { kind: 'invalid' };
  }

  /** Revokes one live session; false when it was not live. */
  async revoke(work: Work, sessionId: string, reason: string): Promise<boolean> {
    return (await this.revokeWhere(work, reason, (q) => q.where('id', '=', sessionId))).length > 0;
  }

  /** Revokes one live session if it belongs to `userId`; false when there is none such. */
  async revokeOwned(work: Work, userId: string, sessionId: string, reason: string): Promise<boolean> {
    return (await this.revokeWhere(work, reason, (q) => q.where('id', '=', sessionId).where('user_id', '=', userId))).length > 0;
  }

  /** Revokes every live session of a user (but `except`); returns the revoked ids. */
  async revokeAll(work: Work, userId: string, reason: string, except?: string): Promise<string[]> {
    return this.revokeWhere(work, reason, (q) => (except ? q.where('user_id', '=', userId).where('id', '<>', except) : q.where('user_id', '=', userId)));
  }

  /** Revokes the live sessions `filter` picks, recording them as changed in `work`. */
  private async revokeWhere(work: Work, reason: string, filter: (q: SessionUpdate) => SessionUpdate): Promise<string[]> {
    const now = new Date();
    const rows = await filter(work.trx.updateTable('user_sessions').set({ revoked_at: now, revoked_reason: reason, updated_at: now }))
      .where('revoked_at', 'is', null)
      .returning('id')
      .execute();
    const ids = rows.map((r) => r.id);
    if (ids.length) work.changed({ kind: 'sessions', sessionIds: ids });
    return ids;
  }

  /** Drops cached session and user states a committed change made stale (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    if (change.kind === 'user') return this.local.invalidate(userKey(tenant, change.userId));
    if (change.kind === 'tenant') return Promise.all([this.local.invalidate(sessionKey(tenant, '')), this.local.invalidate(userKey(tenant, ''))]).then(() => undefined);
    if (change.kind === 'sessions') return Promise.all(change.sessionIds.map((id) => this.local.invalidate(sessionKey(tenant, id)))).then(() => undefined);
    return undefined;
  }

  /** The per-request check: session live and bound to this user, user active. */
  async isLive(tenant: TenantContext, sessionId: string, userId: string, policy: TenantPolicy): Promise<boolean> {
    const [session, user] = await Promise.all([this.sessionState(tenant, sessionId), this.userActive(tenant, userId)]);
    return live(session, user, userId, policy);
  }

  /** isLive without a promise, from cached state only: undefined when the session or the user is not cached (false for a malformed session id, as isLive). */
  isLiveCached(tenant: TenantContext, sessionId: string, userId: string, policy: TenantPolicy): boolean | undefined {
    if (!SESSION_ID_ONLY.test(sessionId)) return false;
    const session = this.local.get<SessionState | null>(sessionKey(tenant, sessionId));
    const user = this.local.get<UserState>(userKey(tenant, userId));
    return session === undefined || user === undefined ? undefined : live(session, user, userId, policy);
  }

  /** userActive from memory alone: undefined when the user's state is not cached. */
  userCached(tenant: TenantContext, userId: string): UserState | undefined {
    return this.local.get<UserState>(userKey(tenant, userId));
  }

  async userActive(tenant: TenantContext, userId: string): Promise<UserState> {
    return this.local.load(userKey(tenant, userId), async () => {
      const user = await tenantDb(this.db, tenant.schema)
        .selectFrom('users')
        .select(['status', 'deleted_at', 'locale'])
        .where('id', '=', userId)
        .executeTakeFirst();
      return { active: !!user && user.status === 'active' && user.deleted_at === null, locale: user?.locale ?? null };
    });
  }

  private async sessionState(tenant: TenantContext, sessionId: string): Promise<SessionState | null> {
    if (!SESSION_ID_ONLY.test(sessionId)) return null;
    return this.local.load(sessionKey(tenant, sessionId), async () => {
      const s = await tenantDb(this.db, tenant.schema)
        .selectFrom('user_sessions')
        .select(['user_id', 'revoked_at', 'expires_at', 'last_seen_at'])
        .where('id', '=', sessionId)
        .executeTakeFirst();
      return s ? { userId: s.user_id, revoked: s.revoked_at !== null, expiresAt: s.expires_at.getTime(), lastSeenAt: s.last_seen_at.getTime() } : null;
    });
  }

  /** Live sessions of a user, newest first. */
  async list(tenant: TenantContext, userId: string, policy: TenantPolicy) {
    return tenantDb(this.db, tenant.schema)
      .selectFrom('user_sessions')
      .select(['id', 'ip_address', 'user_agent', 'created_at', 'last_seen_at', 'expires_at'])
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', new Date())
      .where('last_seen_at', '>', new Date(idleCutoff(policy, Date.now())))
      .orderBy('created_at', 'desc')
      .execute();
  }
}
