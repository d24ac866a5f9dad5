import { sql, type Kysely, type Transaction } from 'kysely';
import { PERMISSION_CATALOGUE } from '../access/catalogue.js';
import { touchedByRoles, withOverride, withRoles } from '../access/authority.js';
import { accessGuard, actorOf, loadRoleShapes } from '../access/guard.js';
import { checkPasswordPolicy, hashPassword } from '../auth/passwords.js';
import { accountLink, voidAccountTokens } from '../auth/account-tokens.js';
import type { ApiKeyService } from '../auth/api-keys.js';
import { isLocked } from '../auth/lockout.js';
import type { AuthService } from '../auth/service.js';
import type { SessionStore } from '../auth/sessions.js';
import { randomToken, sha256 } from '../auth/tokens.js';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import { transact, type Rehearsal, type Work } from '../db/work.js';
import { once, type IdempotencyKey, type Outcome } from '../db/idempotency.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { checkVersion, conflictOnUnique, DomainError, FieldChecks, text } from '../errors.js';
import { linkMail, mailReader } from '../mail/compose.js';
import type { Mailer, MailMessage } from '../mail/mailer.js';
import { displayName, type PolicyReader, type TenantPolicy } from '../settings/policy.js';
import type { TenantContext } from '../tenancy/directory.js';
import { StatementCache } from '../db/statements.js';
import { checkEmail } from './email.js';
import { UserList, type UserListQuery } from './list.js';
import { userById, type UserView } from './view.js';

export const USER_STATUSES = ['active', 'invited', 'suspended', 'inactive'] as const;
export const USER_SORTS = ['email', 'username', 'first_name', 'last_name', 'status', 'created_at', 'updated_at', 'last_login_at'] as const;
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const CATALOGUE = new Set(PERMISSION_CATALOGUE.map((p) => p.name));


export interface UserInput {
  email?: string;
  username?: string | null;
  password?: string;
  first_name?: string | null;
  last_name?: string | null;
  phone?: string | null;
  avatar_url?: string | null;
  locale?: string | null;
  timezone?: string | null;
  status?: string;
  roles?: string[];
}


export type VersionedUser = UserView & { readonly version: number };

interface Deps {
  readonly db: Kysely<PlatformDatabase>;
  /** Mails of an email change (a verification link to the new address, a notice to the old). */
  readonly auth: Pick<AuthService, 'emailChanged' | 'sendReported'>;
  readonly changes: Changes;
  readonly apiKeys: Pick<ApiKeyService, 'revokeAllOf'>;
  readonly sessions: SessionStore;
  readonly policies: PolicyReader;
  readonly mailer: Mailer;
  readonly publicUrl: string;
}

function clean(value: string | null | undefined, field: string, max: number): string | null | undefined {
  if (value === undefined || value === null) return value;
  const trimmed = value.trim();
  if (trimmed.length > max) throw DomainError.invalid(field, text('reason.max_length', { limit: max }));
  return trimmed === '' ? null : trimmed;
}

/** A well-formed BCP 47 tag (`de`, `fr-CA`, `zh-Hant-TW`); any language, supported or not (answers fall back, §15). */
function isLanguageTag(tag: string): boolean {
  try {
    return Intl.getCanonicalLocales(tag).length === 1;
  } catch {
    return false;
  }
}

/** The profile fields of an input, cleaned; every failing field is reported together. */
function profile(input: UserInput, checks = new FieldChecks()) {
  const username = checks.check(() => {
    const name = clean(input.username, 'username', 64);
    if (name && !USERNAME.test(name)) throw DomainError.invalid('username', text('reason.username'));
    return name;
  });
  const timezone = checks.check(() => {
    if (input.timezone && !Intl.supportedValuesOf('timeZone').includes(input.timezone)) throw DomainError.invalid('timezone', text('reason.time_zone'));
    return clean(input.timezone, 'timezone', 64);
  });
  const fields = {
    email: checks.check(() => (input.email === undefined ? undefined : checkEmail(input.email))),
    username,
    first_name: checks.check(() => clean(input.first_name, 'first_name', 200)),
    last_name: checks.check(() => clean(input.last_name, 'last_name', 200)),
    phone: checks.check(() => clean(input.phone, 'phone', 50)),
    avatar_url: checks.check(() => clean(input.avatar_url, 'avatar_url', 2000)),
    locale: checks.check(() => {
      const locale = clean(input.locale, 'locale', 35);
      if (locale && !isLanguageTag(locale)) throw DomainError.invalid('locale', text('reason.locale'));
      return locale;
    }),
    timezone,
    status: input.status,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

export interface LockState {
  readonly locked: boolean;
  readonly locked_until: Date | null;
  readonly failed_login_count: number;
  readonly lockout_count: number;
}

async function lockStateOf(db: Kysely<TenantDatabase>, userId: string): Promise<LockState> {
  const row = await db.selectFrom('users').select(['failed_login_count', 'lockout_count', 'locked_until']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
  if (!row) throw DomainError.notFound('user');
  const locked = isLocked(row.locked_until);
  return { locked, locked_until: locked ? row.locked_until : null, failed_login_count: row.failed_login_count, lockout_count: row.lockout_count };
}

/** A unique violation on users names the live email or username already taken. */
const uniqueUser = <T>(work: () => Promise<T>) =>
  conflictOnUnique(work, (constraint) =>
    constraint.startsWith('users_email')
      ? DomainError.conflict('user.email_taken')
      : constraint.startsWith('users_username')
        ? DomainError.conflict('user.username_taken')
        : undefined,
  );

/** User administration: list, create (or invite), update, delete, restore, overrides, sessions. */
export class UserService {
  private readonly statements = new StatementCache();
  private readonly lister: UserList;

  constructor(private readonly deps: Deps) {
    this.lister = new UserList(deps.db);
  }

  /** A page of users as JSON text, rendered by PostgreSQL (users/list.ts). */
  list(tenant: TenantContext, query: UserListQuery): Promise<string> {
    return this.lister.list(tenant, query);
  }

  async get(tenant: TenantContext, userId: string): Promise<VersionedUser> {
    return this.load(tenantDb(this.deps.db, tenant.schema), tenant.schema, userId);
  }

  /** Creates a user (invites one without a password: a set-password link by mail); honours an idempotency key. */
  async create(tenant: TenantContext, input: UserInput & { email: string }, actor: AuditActor, idempotency?: IdempotencyKey): Promise<Outcome<VersionedUser>> {
    const checks = new FieldChecks();
    const fields = profile(input, checks);
    const policy = await this.deps.policies.policy(tenant);
    if (input.password !== undefined) checks.check(() => checkPasswordPolicy(input.password!, policy.password));
    checks.done();
    // Hashed before the transaction: no connection or lock is held while it runs.
    const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
    let invitation: MailMessage | undefined;
    const outcome = await once(tenantDb(this.deps.db, tenant.schema), idempotency, async (trx) => {
      const created = await this.insert(trx, tenant, { roles: input.roles, fields, passwordHash, policy }, actor);
      invitation = created.invitation;
      return { status: 201, body: created.user };
    });
    if (invitation) await this.deps.auth.sendReported(tenant, 'invitation mail', invitation, actor.requestId);
    return outcome;
  }

  private async insert(
    trx: Transaction<TenantDatabase>,
    tenant: TenantContext,
    input: { roles?: string[]; fields: ReturnType<typeof profile>; passwordHash: string | null; policy: TenantPolicy },
    actor: AuditActor,
  ): Promise<{ user: VersionedUser; invitation?: MailMessage }> {
    const { fields, passwordHash, policy } = input;
    const roleNames = input.roles ?? ['user'];
    // The tenant's lock before the roles are read: a role edit committed meanwhile is judged, not missed.
    await accessGuard.lock(trx, 'shared');
    const roles = await this.resolveRoles(trx, roleNames);
    // A new user is changed into existence: the actor must hold what its roles carry, deny entries included.
    const shapes = [...(await loadRoleShapes(trx, roles.map((r) => r.id))).values()];
    await accessGuard.checkUserChange(trx, actorOf(actor), null, { after: (none) => withRoles(none, shapes), touched: touchedByRoles([], shapes) });
    const invited = passwordHash === null;
    const status = fields.status ?? (invited ? 'invited' : 'active');
    const created = await uniqueUser(() =>
      trx
        .insertInto('users')
        .values({ ...fields, email: fields.email as string, status, password_hash: passwordHash, password_changed_at: passwordHash ? new Date() : null })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    if (roles.length) await trx.insertInto('user_roles').values(roles.map((r) => ({ user_id: created.id, role_id: r.id, assigned_by: actor.actorUserId }))).execute();
    const user = await this.load(trx, tenant.schema, created.id);
    await writeAudit(trx, actor, { action: 'users.create', entityType: 'users', entityId: user.id, after: user });

    if (!invited) return { user };
    const token = randomToken('');
    const expiresAt = new Date(Date.now() + policy.invitationTtlHours * 3_600_000);
    await trx.insertInto('password_reset_tokens').values({ user_id: user.id, token_hash: sha256(token), expires_at: expiresAt, requested_ip: actor.ip }).execute();
    const link = accountLink(this.deps.publicUrl, 'accept-invitation', tenant.slug, token);
    const invitation = linkMail('invite', mailReader(user, policy), user.email, { product: displayName(tenant, policy), link, expiresAt, ttl: policy.invitationTtlHours });
    return { user, invitation };
  }

  /** Partial update; `expected` is the If-Match version (412 when stale). */
  async update(tenant: TenantContext, userId: string, input: UserInput, expected: number | undefined, actor: AuditActor): Promise<VersionedUser> {
    const checks = new FieldChecks();
    const fields = profile(input, checks);
    checks.done();
    const outcome = await this.transact(tenant, async (work) => {
      const { trx, changed } = work;
      await accessGuard.checkUserChange(trx, actorOf(actor), userId, { leaves: fields.status !== undefined && fields.status !== 'active' });
      const before = await this.load(trx, tenant.schema, userId, true);
      checkVersion(expected, before.version);
      if (Object.keys(fields).length === 0) return { before, after: before, emailChanged: false };
      const emailChanged = fields.email !== undefined && String(fields.email).toLowerCase() !== before.email.toLowerCase();
      const updated = await uniqueUser(() =>
        trx
          .updateTable('users')
          .set({ ...fields, ...(emailChanged ? { is_email_verified: false, email_verified_at: null } : {}), updated_at: new Date(), version: sql`version + 1` })
          .where('id', '=', userId)
          .where('version', '=', before.version)
          .returning('id')
          .executeTakeFirst(),
      );
      if (!updated) throw new DomainError('request.version_mismatch', text('detail.changed_meanwhile'));
      // Links mailed to the old address must not outlive the change.
      const voided = emailChanged ? await voidAccountTokens(trx, userId) : undefined;
      // A suspension ends the user's sessions: reactivating the account does not bring them back.
      const suspended = before.status === 'active' && fields.status !== undefined && fields.status !== 'active';
      const ended = suspended ? await this.deps.sessions.revokeAll(work, userId, 'user_suspended') : [];
      const after = await this.load(trx, tenant.schema, userId);
      const metadata = { ...(voided ? { voided_tokens: voided } : {}), ...(ended.length ? { revoked_sessions: ended.length } : {}) };
      await writeAudit(trx, actor, { action: 'users.update', entityType: 'users', entityId: userId, before, after, ...(Object.keys(metadata).length ? { metadata } : {}) });
      changed({ kind: 'user', userId });
      return { before, after, emailChanged };
    });
    if (outcome.emailChanged) await this.deps.auth.emailChanged(tenant, { id: userId, oldEmail: outcome.before.email, newEmail: outcome.after.email }, actor);
    return outcome.after;
  }

  /** Soft delete: ends the user's sessions and API keys and frees the email. */
  async remove(tenant: TenantContext, actorUserId: string, userId: string, expected: number | undefined, actor: AuditActor): Promise<void> {
    if (actorUserId === userId) throw new DomainError('permission.self_change', text('detail.self_delete'));
    await this.transact(tenant, async (work) => {
      const { trx } = work;
      await accessGuard.checkUserChange(trx, actorOf(actor), userId, { leaves: true });
      const before = await this.load(trx, tenant.schema, userId, true);
      checkVersion(expected, before.version);
      const deleted = await trx
        .updateTable('users')
        .set({ deleted_at: new Date(), updated_at: new Date(), version: sql`version + 1` })
        .where('id', '=', userId)
        .where('version', '=', before.version)
        .executeTakeFirst();
      if (Number(deleted.numUpdatedRows) === 0) throw new DomainError('request.version_mismatch', text('detail.changed_meanwhile'));
      const sessions = await this.deps.sessions.revokeAll(work, userId, 'user_deleted');
      const keys = await this.deps.apiKeys.revokeAllOf(work, userId);
      // Reset and verification links die with the account: a restore does not revive them.
      const voided = await voidAccountTokens(trx, userId);
      await writeAudit(trx, actor, { action: 'users.delete', entityType: 'users', entityId: userId, before, metadata: { revoked_sessions: sessions.length, revoked_api_keys: keys, voided_tokens: voided } });
      work.changed({ kind: 'user', userId });
    });
  }

  async restore(tenant: TenantContext, userId: string, actor: AuditActor): Promise<VersionedUser> {
    return this.transact(tenant, async ({ trx, changed }) => {
      await accessGuard.checkUserChange(trx, actorOf(actor), userId);
      const restored = await uniqueUser(() =>
        trx
          .updateTable('users')
          .set({ deleted_at: null, updated_at: new Date(), version: sql`version + 1` })
          .where('id', '=', userId)
          .where('deleted_at', 'is not', null)
          .returning('id')
          .executeTakeFirst(),
      );
      if (!restored) throw new DomainError('user.not_deleted');
      const after = await this.load(trx, tenant.schema, userId);
      await writeAudit(trx, actor, { action: 'users.restore', entityType: 'users', entityId: userId, after });
      changed({ kind: 'user', userId });
      return after;
    });
  }

  private transact<T>(tenant: TenantContext, fn: (work: Work) => Promise<T>, rehearsal?: Rehearsal): Promise<T> {
    return transact(this.deps.db, this.deps.changes, tenant, fn, rehearsal);
  }

  /**
   * Sets a user-level override; the actor must hold the permission and may not target themselves.
   * With a rehearsal, a dry run of the same change (access/preview.ts).
   */
  async setOverride(
    tenant: TenantContext,
    actorUserId: string,
    userId: string,
    permission: string,
    input: { effect: 'allow' | 'deny'; expires_at?: string | null },
    actor: AuditActor,
    rehearsal?: Rehearsal,
  ) {
    if (!CATALOGUE.has(permission)) throw DomainError.invalid('permission', text('reason.unknown_permission', { permission }));
    if (actorUserId === userId) throw new DomainError('permission.self_change', text('detail.self_permissions'));
    let expiresAt: Date | null = null;
    if (input.expires_at) {
      expiresAt = new Date(input.expires_at);
      if (Number.isNaN(expiresAt.getTime()) || expiresAt <= new Date()) throw DomainError.invalid('expires_at', text('reason.future_date_time'));
    }
    return this.transact(tenant, async ({ trx, changed, watch }) => {
      await accessGuard.checkUserChange(trx, actorOf(actor), userId, { after: (before) => withOverride(before, permission, input.effect, expiresAt), touched: [permission] });
      await this.load(trx, tenant.schema, userId);
      await watch([userId]);
      const perm = await trx.selectFrom('permissions').select('id').where('name', '=', permission).executeTakeFirstOrThrow();
      const before = await trx.selectFrom('user_permissions').select(['effect', 'expires_at']).where('user_id', '=', userId).where('permission_id', '=', perm.id).executeTakeFirst();
      await trx
        .insertInto('user_permissions')
        .values({ user_id: userId, permission_id: perm.id, effect: input.effect, expires_at: expiresAt, granted_by: actorUserId })
        .onConflict((oc) => oc.columns(['user_id', 'permission_id']).doUpdateSet({ effect: input.effect, expires_at: expiresAt, granted_by: actorUserId, updated_at: new Date() }))
        .execute();
      const after = { permission, effect: input.effect, expires_at: expiresAt };
      await writeAudit(trx, actor, { action: 'users.set_permission', entityType: 'users', entityId: userId, before: before ? { permission, ...before } : null, after });
      changed({ kind: 'access', userId });
      return after;
    }, rehearsal);
  }

  /** Removes a user-level override; with a rehearsal, a dry run of the same change. */
  async removeOverride(tenant: TenantContext, actorUserId: string, userId: string, permission: string, actor: AuditActor, rehearsal?: Rehearsal): Promise<void> {
    if (actorUserId === userId) throw new DomainError('permission.self_change', text('detail.self_permissions'));
    if (!CATALOGUE.has(permission)) throw DomainError.notFound('override');
    await this.transact(tenant, async ({ trx, changed, watch }) => {
      await accessGuard.checkUserChange(trx, actorOf(actor), userId, { after: (before) => withOverride(before, permission, null), touched: [permission] });
      await this.load(trx, tenant.schema, userId);
      await watch([userId]);
      const removed = await trx
        .deleteFrom('user_permissions')
        .where('user_id', '=', userId)
        .where('permission_id', '=', (eb) => eb.selectFrom('permissions').select('id').where('name', '=', permission))
        .returning(['effect', 'expires_at'])
        .executeTakeFirst();
      if (!removed) throw DomainError.notFound('override');
      await writeAudit(trx, actor, { action: 'users.remove_permission', entityType: 'users', entityId: userId, before: { permission, ...removed } });
      changed({ kind: 'access', userId });
    }, rehearsal);
  }

  /** The user's sign-in lock: failed logins in a row, lockouts so far and, while locked, until when. */
  async lockState(tenant: TenantContext, userId: string): Promise<LockState> {
    return lockStateOf(tenantDb(this.deps.db, tenant.schema), userId);
  }

  /** Lifts a lockout and clears the failure counts (audited; the out-rank rule applies). */
  async unlock(tenant: TenantContext, userId: string, actor: AuditActor): Promise<LockState> {
    const db = tenantDb(this.deps.db, tenant.schema);
    return db.transaction().execute(async (trx) => {
      await accessGuard.checkUserChange(trx, actorOf(actor), userId);
      const before = await lockStateOf(trx, userId);
      await trx.updateTable('users').set({ failed_login_count: 0, lockout_count: 0, locked_until: null, updated_at: new Date(), version: sql`version + 1` }).where('id', '=', userId).execute();
      const after = await lockStateOf(trx, userId);
      await writeAudit(trx, actor, { action: 'users.unlock', entityType: 'users', entityId: userId, before, after });
      return after;
    });
  }

  async sessions(tenant: TenantContext, userId: string) {
    const db = tenantDb(this.deps.db, tenant.schema);
    await this.load(db, tenant.schema, userId);
    return this.deps.sessions.list(tenant, userId, await this.deps.policies.policy(tenant));
  }

  /** Revokes one session of the user, or all of them (`sessionId` undefined); returns how many. */
  async revokeSessions(tenant: TenantContext, userId: string, sessionId: string | undefined, actor: AuditActor): Promise<number> {
    const reason = actor.actorUserId === userId ? 'revoked_by_user' : 'revoked_by_admin';
    const revoked = await this.transact(tenant, async (work) => {
      const { trx } = work;
      await accessGuard.checkUserChange(trx, actorOf(actor), userId);
      await this.load(trx, tenant.schema, userId);
      let ids: string[];
      if (sessionId) {
        if (!(await this.deps.sessions.revokeOwned(work, userId, sessionId, reason))) throw DomainError.notFound('session');
        ids = [sessionId];
      } else {
        ids = await this.deps.sessions.revokeAll(work, userId, reason);
      }
      await writeAudit(trx, actor, { action: 'sessions.delete', entityType: 'users', entityId: userId, metadata: { sessions: ids } });
      return ids;
    });
    return revoked.length;
  }

  /** One live user with its roles, in one query (row-locked for an update when asked). */
  private async load(db: Kysely<TenantDatabase>, schema: string, userId: string, forUpdate = false): Promise<VersionedUser> {
    const { rows } = await this.statements.run(db, `users.load:${schema}:${forUpdate}`, { id: userId }, (v) => {
      const q = userById(db, v.id);
      return forUpdate ? q.forUpdate('users') : q;
    });
    const user = rows[0];
    if (!user) throw DomainError.notFound('user');
    return { ...user, roles: user.roles ?? [] };
  }

  private async resolveRoles(db: Kysely<TenantDatabase>, names: readonly string[]) {
    const wanted = [...new Set(names.map((n) => n.trim().toLowerCase()))];
    if (wanted.length === 0) return [];
    const roles = await db.selectFrom('roles').select(['id', 'name']).where(sql`lower(name)`, 'in', wanted).where('deleted_at', 'is', null).execute();
    const unknown = wanted.filter((n) => !roles.some((r) => r.name.toLowerCase() === n));
    if (unknown.length) throw DomainError.invalid('roles', text('reason.unknown_roles', { roles: unknown.join(', ') }));
    return roles;
  }
}
