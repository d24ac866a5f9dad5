import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import type { AuditActor } from '../audit/audit.js';
import type { LocalCache } from '../cache/local.js';
import { tenantDb } from '../db/database.js';
import { StatementCache } from '../db/statements.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import type { TenantPolicy } from '../settings/policy.js';
import type { TenantContext } from '../tenancy/directory.js';
import { randomToken, sha256 } from './tokens.js';

const REFRESH_PREFIX = 'rt_';
const SESSION_ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const SESSION_ID_ONLY = new RegExp(`^${SESSION_ID}$`);

/**
 * A refresh token: `rt_`, its session's id, `.`, 256 random bits. Opaque to clients; only its
 * SHA-256 is stored. Anything else is invalid without a query; so are the tokens issued by
 * earlier versions of the service, which named no session (their holders sign in again).
 */
const REFRESH_TOKEN = new RegExp(`^${REFRESH_PREFIX}(${SESSION_ID})\\.[A-Za-z0-9_-]{43}$`);

/** Sessions last used before this are idle: no longer live. One clock, the service's, decides it everywhere. */
const idleCutoff = (policy: TenantPolicy, now: number) => now - policy.idleTimeoutMinutes * 60_000;

const refreshTokenOf = (sessionId: string) => randomToken(`${REFRESH_PREFIX}${sessionId}.`);

interface SessionState {
  readonly userId: string;
  readonly revoked: boolean;
  readonly expiresAt: number;
  readonly lastSeenAt: number;
}

interface UserState {
  readonly active: boolean;
}

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
  ) {}

  /** A new session's row and its refresh token (the caller inserts the row with its login). */
  newSession(input: { userId: string; ip: string | null; userAgent: string | null; policy: TenantPolicy }) {
    const id = randomUUID();
    const refreshToken = refreshTokenOf(id);
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
   * reuse), the retired token's hash added to the session's history, and the `auth.refresh`
   * audit row. The token names its session, so the row is found by primary key and the hashes
   * need no index on user_sessions: the UPDATE changes no indexed column and stays on its page
   * (a HOT update, no index entries written).
   */
  async rotate(tenant: TenantContext, presented: string, policy: TenantPolicy, actor: AuditActor): Promise<RotateResult> {
    const id = REFRESH_TOKEN.exec(presented)?.[1];
    if (!id) return { kind: 'invalid' };
    const db = tenantDb(this.db, tenant.schema);
    const hash = sha256(presented);
    const next = refreshTokenOf(id);
    const now = new Date();
    const values = { id, hash, next: sha256(next), now, idleCutoff: new Date(idleCutoff(policy, now.getTime())), ip: actor.ip, userAgent: actor.userAgent?.slice(0, 1000) ?? null, requestId: actor.requestId };
    // Built once per schema and prepared: a refresh is a hot path. The previous hash is still
    // written (it costs nothing in the same row) so that a service rolled back to the version
    // before the history keeps recognising the last retired token.
    const { rows } = await this.statements.run(db, `sessions.rotate:${tenant.schema}`, values, (v) =>
      db
        .with('rotated', (q) =>
          q
            .updateTable('user_sessions')
            .set({ previous_refresh_token_hash: v.hash, refresh_token_hash: v.next, last_seen_at: v.now, updated_at: v.now })
            .where('id', '=', v.id)
            .where('refresh_token_hash', '=', v.hash)
            .where('revoked_at', 'is', null)
            .where('expires_at', '>', v.now)
            .where('last_seen_at', '>', v.idleCutoff)
            .returning('user_id'),
        )
        .with('retired', (q) =>
          q
            .insertInto('refresh_token_history')
            .columns(['session_id', 'token_hash', 'created_at'])
            .expression((eb) => eb.selectFrom('rotated').select([eb.val(v.id).as('session_id'), eb.val(v.hash).as('token_hash'), eb.val(v.now).as('created_at')]))
            .returning('session_id'),
        )
        .with('audited', (q) =>
          q
            .insertInto('audit_logs')
            .columns(['actor_user_id', 'actor_type', 'session_id', 'ip_address', 'user_agent', 'request_id', 'action', 'entity_type', 'entity_id', 'metadata'])
            .expression((eb) =>
              eb
                .selectFrom('rotated')
                .select([
                  'rotated.user_id as actor_user_id',
                  sql.lit('user').as('actor_type'),
                  eb.val(v.id).as('session_id'),
                  eb.val(v.ip).as('ip_address'),
                  eb.val(v.userAgent).as('user_agent'),
                  eb.val(v.requestId).as('request_id'),
                  sql.lit('auth.refresh').as('action'),
                  sql.lit('user_sessions').as('entity_type'),
                  eb.val(v.id).as('entity_id'),
                  sql.lit('{}').as('metadata'),
                ]),
            )
            .returning('id'),
        )
        .selectFrom('rotated')
        .select('user_id'),
    );
    const rotated = rows[0];
    if (rotated) return { kind: 'rotated', sessionId: id, userId: rotated.user_id, refreshToken: next };
    // Any token the live session retired is reuse; a made-up secret matches none and is merely invalid.
    const reused = await db
      .selectFrom('user_sessions')
      .select('user_id')
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) =>
        eb.or([
          eb('previous_refresh_token_hash', '=', hash),
          eb.exists(eb.selectFrom('refresh_token_history').select('session_id').where('session_id', '=', id).where('token_hash', '=', hash)),
        ]),
      )
      .executeTakeFirst();
    return reused ? { kind: 'reused', sessionId: id, userId: reused.user_id } : { kind: 'invalid' };
  }

  async revoke(db: Kysely<TenantDatabase>, sessionId: string, reason: string): Promise<boolean> {
    return (await this.revokeWhere(db, reason, (q) => q.where('id', '=', sessionId))).length > 0;
  }

  /** Revokes one live session if it belongs to `userId`; false when there is none such. */
  async revokeOwned(db: Kysely<TenantDatabase>, userId: string, sessionId: string, reason: string): Promise<boolean> {
    return (await this.revokeWhere(db, reason, (q) => q.where('id', '=', sessionId).where('user_id', '=', userId))).length > 0;
  }

  /** Revokes every live session of a user (but `except`); returns the revoked ids. */
  async revokeAll(db: Kysely<TenantDatabase>, userId: string, reason: string, except?: string): Promise<string[]> {
    return this.revokeWhere(db, reason, (q) => (except ? q.where('user_id', '=', userId).where('id', '<>', except) : q.where('user_id', '=', userId)));
  }

  /** Revokes the live sessions `filter` picks and forgets their retired tokens, in one statement; returns their ids. */
  private async revokeWhere(
    db: Kysely<TenantDatabase>,
    reason: string,
    filter: (q: UpdateQueryBuilder<TenantDatabase, 'user_sessions', 'user_sessions', UpdateResult>) => UpdateQueryBuilder<TenantDatabase, 'user_sessions', 'user_sessions', UpdateResult>,
  ): Promise<string[]> {
    const now = new Date();
    const rows = await db
      .with('revoked', (q) =>
        filter(q.updateTable('user_sessions').set({ revoked_at: now, revoked_reason: reason, updated_at: now }))
          .where('revoked_at', 'is', null)
          .returning('id'),
      )
      .with('forgotten', (q) =>
        q
          .deleteFrom('refresh_token_history')
          .where('session_id', 'in', (eb) => eb.selectFrom('revoked').select('id'))
          .returning('session_id'),
      )
      .selectFrom('revoked')
      .select('id')
      .execute();
    return rows.map((r) => r.id);
  }

  /**
   * Deletes the retired tokens of sessions no longer live (revoked, expired, idle): a revocation
   * deletes its own, this catches sessions that simply ran out. Returns the rows deleted.
   */
  async purgeRefreshHistory(tenant: TenantContext, policy: TenantPolicy): Promise<number> {
    const now = new Date();
    const result = await tenantDb(this.db, tenant.schema)
      .deleteFrom('refresh_token_history')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('user_sessions')
              .select('user_sessions.id')
              .whereRef('user_sessions.id', '=', 'refresh_token_history.session_id')
              .where('user_sessions.revoked_at', 'is', null)
              .where('user_sessions.expires_at', '>', now)
              .where('user_sessions.last_seen_at', '>', new Date(idleCutoff(policy, now.getTime()))),
          ),
        ),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** After a revocation committed: drop cached states here and on every instance. */
  async forgetSessions(tenant: TenantContext, sessionIds: readonly string[]): Promise<void> {
    await Promise.all(sessionIds.map((id) => this.local.invalidate(sessionKey(tenant, id))));
  }

  async forgetUser(tenant: TenantContext, userId: string): Promise<void> {
    await this.local.invalidate(userKey(tenant, userId));
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

  async userActive(tenant: TenantContext, userId: string): Promise<UserState> {
    return this.local.load(userKey(tenant, userId), async () => {
      const user = await tenantDb(this.db, tenant.schema)
        .selectFrom('users')
        .select(['status', 'deleted_at'])
        .where('id', '=', userId)
        .executeTakeFirst();
      return { active: !!user && user.status === 'active' && user.deleted_at === null };
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
