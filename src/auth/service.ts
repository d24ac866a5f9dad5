import { loginOutcomes } from '../observability/metrics.js';
import { sql, type Kysely, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import type { AccessService } from '../access/service.js';
import { asUser, auditRow, redact, writeAudit, type AuditActor } from '../audit/audit.js';
import { eventOf, withEvent, written } from '../events/outbox.js';
import type { Changes } from '../cache/changes.js';
import { tenantDb } from '../db/database.js';
import { withAuditRow } from '../db/audit-chain.js';
import { transact, type Work } from '../db/work.js';
import { row, StatementCache } from '../db/statements.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError, text, type ErrorCode } from '../errors.js';
import { emailChangedMail, linkMail, mailReader } from '../mail/compose.js';
import type { Mailer, MailMessage } from '../mail/mailer.js';
import { displayName, type PolicyReader, type TenantPolicy } from '../settings/policy.js';
import type { TenantContext } from '../tenancy/directory.js';
import { USER_COLUMNS, type UserView } from '../users/view.js';
import { accountLink, issueResetToken, issueVerificationToken, linkTokenUsable, voidResetTokens, type AccountPage, type LinkTokens } from './account-tokens.js';
import { BackgroundWork, type BackgroundErrorHandler } from './background.js';
import type { JwtKeys } from './keys.js';
import { checkSessionProof, isLocked, isPassword, recordFailure } from './lockout.js';
import { checkPasswordPolicy, hashPassword, verifyPassword } from './passwords.js';
import type { FactorInput, MfaService, MfaStep, PasskeyRegistration } from './mfa/service.js';
import type { AssertionJSON } from './mfa/webauthn.js';
import type { SessionStore } from './sessions.js';
import { randomToken, sha256, signAccessToken } from './tokens.js';

type UserUpdate = UpdateQueryBuilder<TenantDatabase, 'users', 'users', UpdateResult>;

export interface TokenPair {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly token_type: 'bearer';
  readonly expires_in: number;
}

export interface LoginResult extends TokenPair {
  readonly user: UserView;
}

/** What `auth/login` answers: the tokens, or the second step a user with MFA (or who must enrol) takes first. */
export type LoginAnswer = LoginResult | MfaStep;

/** Whether a login answer is a step-up rather than tokens. */
export const isMfaStep = (answer: LoginAnswer): answer is MfaStep => 'mfa_token' in answer;

/** The one answer to every failed login: unknown user, wrong password, locked or inactive account. */

/** Reset mails per account and rolling hour: enough for a lost mail or two, too few to flood a mailbox. */
export const PASSWORD_RESET_MAX_PER_HOUR = 3;

export interface AuthServiceDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly changes: Changes;
  readonly keys: JwtKeys;
  readonly sessions: SessionStore;
  readonly access: AccessService;
  readonly policies: PolicyReader;
  readonly mailer: Mailer;
  /** Second factors: asked for between the password and the session. */
  readonly mfa: MfaService;
  /** Base URL of the pages that take reset and verification tokens. */
  readonly publicUrl: string;
}

/** Login, refresh, logout, password reset, email verification and password change. */
export class AuthService {
  private dummyHash: Promise<string> | undefined;
  private readonly statements = new StatementCache();
  private readonly background = new BackgroundWork();

  constructor(private readonly deps: AuthServiceDeps) {}

  async login(tenant: TenantContext, input: { email?: string; username?: string; password: string }, actor: AuditActor): Promise<LoginAnswer> {
    const identifier = (input.email ?? input.username ?? '').trim();
    if (!identifier) throw DomainError.invalid('email', text('reason.identifier_or_email'));
    const policy = await this.deps.policies.policy(tenant);
    const db = tenantDb(this.deps.db, tenant.schema);
    const column = input.email !== undefined ? 'email' : 'username';
    // Built once per schema and column, and prepared (docs/BENCHMARKS.md: building it cost more than running it).
    const { rows } = await this.statements.run(db, `auth.login:${tenant.schema}:${column}`, { identifier: identifier.toLowerCase() }, (v) =>
      db
        .selectFrom('users')
        .select([...USER_COLUMNS, 'password_hash', 'locked_until'])
        .where((eb) => eb(eb.fn('lower', [column]), '=', v.identifier))
        .where('deleted_at', 'is', null),
    );
    const user = rows[0];

    // The same work whether or not the user exists: no answer or timing tells them apart.
    const hash = user?.password_hash ?? (await this.dummy());
    const passwordOk = await verifyPassword(hash, input.password.slice(0, policy.password.maxLength * 4));
    if (!user || !user.password_hash) return this.unknownUser(db, actor, { identifier, reason: 'unknown_user' }, 'auth.invalid_credentials');
    await this.checkFirstFactor(db, user, policy, actor, { ok: passwordOk, failure: 'bad_password', counts: true, refusal: 'auth.invalid_credentials' });

    // A user with a second factor (or who must enrol one) gets a step-up token instead of tokens.
    const step = await this.deps.mfa.stepUp(tenant, user.id, policy, actor);
    if (step) return step;
    const { password_hash: _hash, locked_until: _locked, ...profile } = user;
    return this.signIn(tenant, db, profile, policy, actor);
  }

  /** Opens the session of a user who has proven who they are; `metadata` joins the `auth.login` audit row. */
  private async signIn(tenant: TenantContext, db: Kysely<TenantDatabase>, user: Omit<UserView, 'roles'>, policy: TenantPolicy, actor: AuditActor, metadata: object = {}): Promise<LoginResult> {
    // The user's reset counters, the new session and the audit row: one statement, one round
    // trip, built once per schema and prepared (building it cost more than running it).
    const session = this.deps.sessions.newSession({ userId: user.id, ip: actor.ip, userAgent: actor.userAgent, policy });
    const now = new Date();
    const entry = { action: 'auth.login', entityType: 'users', entityId: user.id, metadata: { session_id: session.row.id, ...metadata } };
    const audit = auditRow({ ...actor, actorUserId: user.id, actorType: 'user', sessionId: session.row.id }, entry);
    const event = eventOf(user.id, entry, redact)!;
    written.events++;
    await this.statements.run(db, `auth.signed_in:${tenant.schema}`, { now, userId: user.id, session: row(session.row), audit: row(audit), event: row(event) }, (v) =>
      withEvent(
        withAuditRow(
          db
            .with('signed_in', (q) =>
              q.updateTable('users').set({ failed_login_count: 0, lockout_count: 0, locked_until: null, last_login_at: v.now, updated_at: v.now }).where('id', '=', v.userId).returning('id'),
            )
            .with('session', (q) => q.insertInto('user_sessions').values(v.session).returning('id')),
          v.audit,
        ),
        v.event,
      ),
    );
    const pair = await this.tokens(tenant, user.id, session.row.id, session.refreshToken, policy);
    loginOutcomes.inc({ outcome: 'succeeded' });
    return { ...pair, user: { ...user, last_login_at: now, updated_at: now, roles: pair.roles } };
  }

  /**
   * The second step of a login (`auth/mfa/verify`): the `mfa_token` of the first step and one
   * factor. A wrong factor counts towards the lockout like a wrong password, and a few void the
   * token; the right one opens the session, and the token is used up.
   */
  async verifyMfa(tenant: TenantContext, input: FactorInput & { mfa_token: string }, actor: AuditActor): Promise<LoginResult> {
    const { mfa } = this.deps;
    const challenge = await mfa.challenge(tenant, input.mfa_token, 'login');
    return this.secondStep(tenant, challenge, actor, () => mfa.verifyFactor(tenant, challenge, input, actor));
  }

  /**
   * Forced enrolment (`auth.mfa = required`): the `mfa_token` of the first step confirms the TOTP
   * it started with its first code, and the login finishes; the recovery codes come with the tokens.
   */
  async confirmEnrolment(tenant: TenantContext, input: { mfa_token: string; code: string }, actor: AuditActor): Promise<LoginResult & { recovery_codes: string[] }> {
    return this.enrol(tenant, input.mfa_token, actor, 'mfa.invalid_code', async (userId, asUser) => {
      const { recovery_codes } = await this.deps.mfa.confirmTotp(tenant, userId, input.code, asUser);
      return { recovery_codes, metadata: { mfa: 'totp' } };
    });
  }

  /**
   * Forced enrolment with a passkey: the `mfa_token` of the first step registers the passkey of
   * its challenge and the login finishes; a response that does not verify counts towards the
   * lockout. The recovery codes come with the tokens.
   */
  async confirmPasskeyEnrolment(tenant: TenantContext, input: PasskeyRegistration & { mfa_token: string }, actor: AuditActor): Promise<LoginResult & { recovery_codes: string[] }> {
    return this.enrol(tenant, input.mfa_token, actor, 'mfa.passkey_invalid', async (userId, asUser, challengeId) => {
      const passkey = await this.deps.mfa.registerPasskey(tenant, userId, input, asUser, challengeId);
      return { recovery_codes: passkey.recovery_codes ?? [], metadata: { mfa: 'webauthn', passkey_id: passkey.id } };
    });
  }

  /** A forced enrolment's factor registered as the second step: `refused` (a factor that does not verify) counts as a failure. */
  private async enrol(
    tenant: TenantContext,
    mfaToken: string,
    actor: AuditActor,
    refused: string,
    register: (userId: string, asUser: AuditActor, challengeId: string) => Promise<{ recovery_codes: string[]; metadata: Record<string, unknown> }>,
  ): Promise<LoginResult & { recovery_codes: string[] }> {
    const challenge = await this.deps.mfa.challenge(tenant, mfaToken, 'enrolment');
    let recoveryCodes: string[] = [];
    const result = await this.secondStep(tenant, challenge, actor, async (_db, userId) => {
      try {
        const done = await register(userId, asUser(actor, userId), challenge.id);
        recoveryCodes = done.recovery_codes;
        return { ...done.metadata, enrolled: true };
      } catch (error) {
        if (error instanceof DomainError && error.code === refused) return null;
        throw error;
      }
    });
    return { ...result, recovery_codes: recoveryCodes };
  }

  /** Starts the TOTP of a forced enrolment, for the user the `mfa_token` stands for (`keepPending`: the one started already, if any). */
  async startEnrolment(tenant: TenantContext, mfaToken: string, actor: AuditActor, keepPending = false): Promise<{ secret: string; otpauth_url: string }> {
    const challenge = await this.deps.mfa.challenge(tenant, mfaToken, 'enrolment');
    return this.deps.mfa.startTotp(tenant, challenge.userId, asUser(actor, challenge.userId), keepPending);
  }

  /**
   * Passwordless sign-in (`auth/passkey/login`): an assertion to a challenge of
   * `auth/passkey/options` by a discoverable passkey, the user verified by the authenticator, so
   * it stands for both factors. A known credential's failure counts towards its user's lockout;
   * every refusal is the same `auth.passkey_failed`.
   */
  async passkeyLogin(tenant: TenantContext, input: { webauthn: AssertionJSON }, actor: AuditActor): Promise<LoginResult> {
    const policy = await this.deps.policies.policy(tenant);
    const db = tenantDb(this.deps.db, tenant.schema);
    const { userId, passkeyId } = await this.deps.mfa.passwordlessPasskey(tenant, input.webauthn, actor);
    const user = userId ? await this.userOf(db, userId) : undefined;
    if (!user) return this.unknownUser(db, actor, { reason: 'unknown_passkey', method: 'webauthn' }, 'auth.passkey_failed');
    // A signature cannot be guessed, and credential IDs are no secret: a failed assertion is
    // audited but does not count towards the lockout (else anyone could lock the account).
    await this.checkFirstFactor(db, user, policy, actor, { ok: passkeyId !== null, failure: 'bad_passkey', counts: false, refusal: 'auth.passkey_failed' });
    const { locked_until: _locked, ...profile } = user;
    return this.signIn(tenant, db, profile, policy, actor, { mfa: 'webauthn', passkey_id: passkeyId, passwordless: true });
  }

  /** A sign-in for no known account: audited with what was tried, and refused. */
  private async unknownUser(db: Kysely<TenantDatabase>, actor: AuditActor, metadata: Record<string, unknown>, refusal: ErrorCode): Promise<never> {
    await db.transaction().execute((trx) => writeAudit(trx, actor, { action: 'auth.login_failed', entityType: 'users', metadata }));
    loginOutcomes.inc({ outcome: 'unknown_user' });
    throw new DomainError(refusal);
  }

  /**
   * The rules of a first factor (a password, or a passkey alone): a locked or inactive account is
   * refused whatever was proven; a failed proof is audited (and, if it `counts`, counts towards
   * the lockout); then the tenant may
   * require a verified email address. `refusal` is the one answer for all of these but the last.
   */
  private async checkFirstFactor(
    db: Kysely<TenantDatabase>,
    user: { id: string; status: string; locked_until: Date | null; is_email_verified: boolean },
    policy: TenantPolicy,
    actor: AuditActor,
    proof: { ok: boolean; failure: 'bad_password' | 'bad_passkey'; counts: boolean; refusal: ErrorCode },
  ): Promise<void> {
    const locked = isLocked(user.locked_until);
    if (locked || !proof.ok || user.status !== 'active') {
      await recordFailure(db, user.id, policy, actor, locked ? 'locked' : !proof.ok ? proof.failure : `status_${user.status}`, proof.counts && !locked && !proof.ok);
      loginOutcomes.inc({ outcome: locked ? 'locked' : !proof.ok ? proof.failure : 'inactive' });
      throw new DomainError(proof.refusal);
    }
    if (policy.requireEmailVerification && !user.is_email_verified) {
      loginOutcomes.inc({ outcome: 'email_not_verified' });
      throw new DomainError('auth.email_not_verified');
    }
  }

  /** A user who is not deleted, with the lock a sign-in checks. */
  private userOf(db: Kysely<TenantDatabase>, userId: string) {
    return db.selectFrom('users').select([...USER_COLUMNS, 'locked_until']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
  }

  /** The checks every second step shares: the user still active and unlocked, the factor (a failure counted), the token used once, the session. */
  private async secondStep(
    tenant: TenantContext,
    challenge: { id: string; userId: string },
    actor: AuditActor,
    factor: (db: Kysely<TenantDatabase>, userId: string) => Promise<object | null>,
  ): Promise<LoginResult> {
    const policy = await this.deps.policies.policy(tenant);
    const db = tenantDb(this.deps.db, tenant.schema);
    const user = await this.userOf(db, challenge.userId);
    if (!user) throw new DomainError('auth.mfa_token_invalid');
    const locked = isLocked(user.locked_until);
    if (locked || user.status !== 'active') {
      await recordFailure(db, user.id, policy, actor, locked ? 'locked' : `status_${user.status}`, false);
      throw new DomainError('auth.mfa_failed');
    }
    const passed = await factor(db, user.id);
    if (!passed) {
      await this.deps.mfa.failedAttempt(tenant, challenge.id);
      await recordFailure(db, user.id, policy, actor, 'bad_mfa_factor', true);
      loginOutcomes.inc({ outcome: 'bad_mfa_factor' });
      throw new DomainError('auth.mfa_failed');
    }
    if (!(await this.deps.mfa.useChallenge(db, challenge.id))) throw new DomainError('auth.mfa_token_invalid');
    const { locked_until: _locked, ...profile } = user;
    return this.signIn(tenant, db, profile, policy, actor, passed);
  }

  async refresh(tenant: TenantContext, refreshToken: string, actor: AuditActor): Promise<TokenPair> {
    const policy = await this.deps.policies.policy(tenant);
    // The rotation and its audit row are one statement (atomic on its own); only a reuse needs a transaction.
    const result = await this.deps.sessions.rotate(tenant, refreshToken, policy, actor);
    if (result.kind === 'reused') {
      await this.transact(tenant, async (work) => {
        await this.deps.sessions.revoke(work, result.sessionId, 'refresh_token_reuse');
        await writeAudit(work.trx, { ...actor, actorUserId: result.userId, sessionId: result.sessionId }, { action: 'auth.refresh_reuse', entityType: 'user_sessions', entityId: result.sessionId });
      });
    }
    if (result.kind !== 'rotated') throw new DomainError('auth.invalid_refresh_token');
    if (!(await this.deps.sessions.userActive(tenant, result.userId)).active) throw new DomainError('auth.invalid_refresh_token');
    const { roles: _roles, ...pair } = await this.tokens(tenant, result.userId, result.sessionId, result.refreshToken, policy);
    return pair;
  }

  async logout(tenant: TenantContext, sessionId: string, actor: AuditActor): Promise<void> {
    await this.transact(tenant, async (work) => {
      await this.deps.sessions.revoke(work, sessionId, 'logout');
      await writeAudit(work.trx, actor, { action: 'auth.logout', entityType: 'user_sessions', entityId: sessionId });
    });
  }

  private transact<T>(tenant: TenantContext, fn: (work: Work) => Promise<T>): Promise<T> {
    return transact(this.deps.db, this.deps.changes, tenant, fn);
  }

  /**
   * Returns at once, before anything about the account is read: the lookup, the token and the
   * mail run after the answer, so a known and an unknown address are answered alike and in the
   * same time. At most PASSWORD_RESET_MAX_PER_HOUR links per account and hour; further requests
   * send nothing. `settled()` waits for the work.
   */
  requestPasswordReset(tenant: TenantContext, email: string, actor: AuditActor): void {
    this.background.run('password reset request', () => this.resetRequested(tenant, email.trim().toLowerCase(), actor));
  }

  private async resetRequested(tenant: TenantContext, email: string, actor: AuditActor): Promise<void> {
    const policy = await this.deps.policies.policy(tenant);
    const issued = await issueResetToken(tenantDb(this.deps.db, tenant.schema), email, { ttlMinutes: policy.passwordResetTtlMinutes, maxPerHour: PASSWORD_RESET_MAX_PER_HOUR }, actor);
    if (!issued) return;
    const reader = mailReader(issued, policy);
    const link = this.link('reset-password', tenant, issued.token);
    await this.deliver(tenant, linkMail('reset', reader, issued.email, { product: displayName(tenant, policy), link, expiresAt: issued.expiresAt, ttl: policy.passwordResetTtlMinutes }));
  }

  /** Resolves once the work queued so far (reset requests) is done: graceful shutdown and tests wait on it. */
  settled(): Promise<void> {
    return this.background.settled();
  }

  /** Where failures of that work are reported (the app's logger). */
  reportBackgroundErrors(handler: BackgroundErrorHandler): void {
    this.background.reportTo(handler);
  }

  /** Sets the new password, uses the token up, and revokes every session of the user. */
  async confirmPasswordReset(tenant: TenantContext, token: string, newPassword: string, actor: AuditActor): Promise<void> {
    const policy = await this.deps.policies.policy(tenant);
    checkPasswordPolicy(newPassword, policy.password, 'new_password');
    const passwordHash = await hashPassword(newPassword);
    await this.transact(tenant, async (work) => {
      const { trx } = work;
      const used = await trx
        .updateTable('password_reset_tokens')
        .set({ used_at: new Date(), updated_at: new Date() })
        .where('token_hash', '=', sha256(token))
        .where('used_at', 'is', null)
        .where('expires_at', '>', new Date())
        .returning('user_id')
        .executeTakeFirst();
      if (!used) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
      const user = await this.replacePassword(work, (q) => q.where('id', '=', used.user_id), passwordHash);
      if (!user) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
      // An invited user sets the first password through the same mechanism and becomes active.
      if (user.status === 'invited') {
        await trx.updateTable('users').set({ status: 'active', is_email_verified: true, email_verified_at: new Date() }).where('id', '=', user.id).execute();
      }
      await writeAudit(trx, { ...actor, actorUserId: user.id }, { action: 'auth.password_reset', entityType: 'users', entityId: user.id, metadata: { revoked_sessions: user.revoked.length, voided_reset_tokens: user.voided } });
    });
  }

  /**
   * An operator's way back in (the CLI's `users reset-password`): a new random password for the
   * account of `email`, returned to be shown once; its sessions end and its reset links are void.
   */
  async resetPasswordByOperator(tenant: TenantContext, email: string, actor: AuditActor): Promise<string> {
    const policy = await this.deps.policies.policy(tenant);
    // 120 random bits, then one character of each class a policy may require.
    const password = `${randomToken('').slice(0, 20)}aA1-`;
    checkPasswordPolicy(password, policy.password);
    const passwordHash = await hashPassword(password);
    await this.transact(tenant, async (work) => {
      const user = await this.replacePassword(work, (q) => q.where((eb) => eb(eb.fn('lower', ['email']), '=', email.trim().toLowerCase())), passwordHash);
      if (!user) throw DomainError.notFound('user', text('detail.user_email_not_found', { email }));
      await writeAudit(work.trx, actor, { action: 'auth.password_reset', entityType: 'users', entityId: user.id, metadata: { by: 'operator', revoked_sessions: user.revoked.length, voided_reset_tokens: user.voided } });
    });
    return password;
  }

  /** A live user's new password (lock cleared), every session ended and the reset links mailed earlier voided. */
  private async replacePassword(work: Work, which: (q: UserUpdate) => UserUpdate, passwordHash: string) {
    const now = new Date();
    const user = await which(work.trx.updateTable('users').set({ password_hash: passwordHash, password_changed_at: now, failed_login_count: 0, locked_until: null, updated_at: now, version: sql`version + 1` }))
      .where('deleted_at', 'is', null)
      .returning(['id', 'status'])
      .executeTakeFirst();
    if (!user) return undefined;
    const revoked = await this.deps.sessions.revokeAll(work, user.id, 'password_reset');
    // Other links mailed earlier would reset the new password again.
    const voided = await voidResetTokens(work.trx, user.id);
    work.changed({ kind: 'user', userId: user.id });
    return { ...user, revoked, voided };
  }

  async requestEmailVerification(tenant: TenantContext, userId: string, actor: AuditActor): Promise<void> {
    const db = tenantDb(this.deps.db, tenant.schema);
    const user = await db.selectFrom('users').select(['id', 'email', 'is_email_verified']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    if (user.is_email_verified) throw DomainError.conflict('auth.email_already_verified');
    const mail = await this.verificationMail(tenant, user, actor, {});
    await this.deliver(tenant, mail);
  }

  /**
   * After an email change has committed (the caller set `is_email_verified` false and called
   * voidAccountTokens in its transaction): stores a verification token for the new address,
   * mails its link there, and tells the old address where the account's mail now goes. A mail
   * that cannot be sent is reported (reportBackgroundErrors), not thrown: the change stands.
   */
  /** Sends a mail after a committed change: a failure is reported (logged, with the request's id), never thrown. */
  async sendReported(tenant: TenantContext, what: string, message: MailMessage, requestId: string | null): Promise<void> {
    await this.deliver(tenant, message).catch((error: unknown) => this.background.report(error, what, requestId));
  }

  /** Every mail to a tenant's users goes through here: none while the tenant's `mail.enabled` is off (a fork, until an admin turns it on). */
  private async deliver(tenant: TenantContext, message: MailMessage): Promise<void> {
    if (!(await this.deps.policies.policy(tenant)).mailEnabled) return;
    await this.deps.mailer.send(message);
  }

  async emailChanged(tenant: TenantContext, user: { readonly id: string; readonly oldEmail: string; readonly newEmail: string }, actor: AuditActor): Promise<void> {
    const verification = await this.verificationMail(tenant, { id: user.id, email: user.newEmail }, actor, { reason: 'email_changed' });
    const policy = await this.deps.policies.policy(tenant);
    const reader = mailReader(await this.readerOf(tenant, user.id), policy);
    const notice = emailChangedMail(reader, user.oldEmail, { product: displayName(tenant, policy), oldEmail: user.oldEmail, newEmail: user.newEmail, changedAt: new Date() });
    const sent = await Promise.allSettled([this.deliver(tenant, verification), this.deliver(tenant, notice)]);
    for (const result of sent) if (result.status === 'rejected') this.background.report(result.reason, 'email change mail');
  }

  /** Stores a verification token for the address (with its audit row) and returns the mail carrying its link, in the user's language. */
  private async verificationMail(tenant: TenantContext, user: { readonly id: string; readonly email: string }, actor: AuditActor, metadata: Record<string, unknown>): Promise<MailMessage> {
    const policy = await this.deps.policies.policy(tenant);
    const token = await issueVerificationToken(tenantDb(this.deps.db, tenant.schema), user, policy.emailVerificationTtlHours, actor, metadata);
    const expiresAt = new Date(Date.now() + policy.emailVerificationTtlHours * 3_600_000);
    const reader = mailReader(await this.readerOf(tenant, user.id), policy);
    return linkMail('verify', reader, user.email, { product: displayName(tenant, policy), link: this.link('verify-email', tenant, token), expiresAt, ttl: policy.emailVerificationTtlHours });
  }

  /** A user's language and time zone, for their mail. */
  private async readerOf(tenant: TenantContext, userId: string) {
    const row = await tenantDb(this.deps.db, tenant.schema).selectFrom('users').select(['locale', 'timezone']).where('id', '=', userId).executeTakeFirst();
    return row ?? {};
  }

  /** Whether a mailed link can still be used: what its page asks before showing a form (using it checks again). */
  linkUsable(tenant: TenantContext, tokens: LinkTokens, token: string): Promise<boolean> {
    return linkTokenUsable(tenantDb(this.deps.db, tenant.schema), tokens, token);
  }

  /** Marks the address verified, provided it is still the user's address. */
  async verifyEmail(tenant: TenantContext, token: string, actor: AuditActor): Promise<void> {
    const db = tenantDb(this.deps.db, tenant.schema);
    await db.transaction().execute(async (trx) => {
      const used = await trx
        .updateTable('email_verification_tokens')
        .set({ used_at: new Date(), updated_at: new Date() })
        .where('token_hash', '=', sha256(token))
        .where('used_at', 'is', null)
        .where('expires_at', '>', new Date())
        .returning(['user_id', 'email'])
        .executeTakeFirst();
      if (!used) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
      const user = await trx
        .updateTable('users')
        .set({ is_email_verified: true, email_verified_at: new Date(), updated_at: new Date(), version: sql`version + 1` })
        .where('id', '=', used.user_id)
        .where('deleted_at', 'is', null)
        .where((eb) => eb(eb.fn('lower', ['email']), '=', used.email.toLowerCase()))
        .returning('id')
        .executeTakeFirst();
      if (!user) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
      await writeAudit(trx, { ...actor, actorUserId: actor.actorUserId ?? user.id }, { action: 'auth.email_verified', entityType: 'users', entityId: user.id });
    });
  }

  /** Needs the current password (a wrong one counts towards the lockout); revokes the user's other sessions. */
  async changePassword(tenant: TenantContext, userId: string, currentSessionId: string | null, input: { current_password: string; new_password: string }, actor: AuditActor): Promise<void> {
    const policy = await this.deps.policies.policy(tenant);
    const db = tenantDb(this.deps.db, tenant.schema);
    await checkSessionProof(db, userId, policy, actor, {
      field: 'current_password',
      code: 'auth.wrong_password',
      wrong: text('reason.current_password'),
      failure: 'bad_password',
      context: 'password_change',
      check: isPassword(input.current_password),
    });
    checkPasswordPolicy(input.new_password, policy.password, 'new_password');
    const passwordHash = await hashPassword(input.new_password);
    await this.transact(tenant, async (work) => {
      const { trx } = work;
      await trx.updateTable('users').set({ password_hash: passwordHash, password_changed_at: new Date(), updated_at: new Date(), version: sql`version + 1` }).where('id', '=', userId).execute();
      const ids = await this.deps.sessions.revokeAll(work, userId, 'password_changed', currentSessionId ?? undefined);
      // A reset link mailed before the change (perhaps requested by whoever knew the old password) dies with it.
      const voided = await voidResetTokens(trx, userId);
      await writeAudit(trx, actor, { action: 'auth.password_changed', entityType: 'users', entityId: userId, metadata: { revoked_sessions: ids.length, voided_reset_tokens: voided } });
    });
  }

  private async tokens(tenant: TenantContext, userId: string, sessionId: string, refreshToken: string, policy: TenantPolicy): Promise<TokenPair & { roles: string[] }> {
    // One load: the roles and the permissions in a token come from the same data.
    const data = await this.deps.access.data(tenant, userId);
    const permissions = this.deps.access.allowed(data);
    const accessToken = await signAccessToken(this.deps.keys, {
      tenantSlug: tenant.slug,
      userId,
      sessionId,
      roles: data.roles.map((r) => r.name),
      permissions,
      ttlSeconds: policy.accessTokenTtlSeconds,
    });
    return { access_token: accessToken, refresh_token: refreshToken, token_type: 'bearer', expires_in: policy.accessTokenTtlSeconds, roles: data.roles.map((r) => r.name) };
  }

  private link(page: AccountPage, tenant: TenantContext, token: string): string {
    return accountLink(this.deps.publicUrl, page, tenant.slug, token);
  }

  private dummy(): Promise<string> {
    this.dummyHash ??= hashPassword('not a real password: equalizes the timing of unknown users');
    return this.dummyHash;
  }
}
