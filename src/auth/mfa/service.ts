import { randomUUID } from 'node:crypto';
import type { ExpressionBuilder, Kysely } from 'kysely';
import { accessGuard, actorOf } from '../../access/guard.js';
import { asUser, writeAudit, type AuditActor } from '../../audit/audit.js';
import type { Changes } from '../../cache/changes.js';
import { tenantDb } from '../../db/database.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import type { TenantDatabase } from '../../db/types.js';
import { transact } from '../../db/work.js';
import { conflictOnUnique, DomainError, text, type Text } from '../../errors.js';
import { totpSecretContext, type SecretBox } from '../../records/secrets.js';
import { displayName, type MfaMode, type PolicyReader, type TenantPolicy } from '../../settings/policy.js';
import type { TenantContext } from '../../tenancy/directory.js';
import { checkSessionProof, isPassword, type SessionProof } from '../lockout.js';
import type { SessionStore } from '../sessions.js';
import { randomToken, sha256 } from '../tokens.js';
import { newRecoveryCodes, recoveryCodeHash } from './recovery.js';
import { isTotpCode, newTotpSecret, otpauthUrl, totpStep } from './totp.js';
import {
  authenticationOptions,
  challengeOf,
  PASSKEY_CHALLENGE_TTL_SECONDS,
  registrationOptions,
  verifyAssertion,
  verifyRegistration,
  type AssertionJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationJSON,
  type RelyingParty,
  userHandleOf,
} from './webauthn.js';

/** What stands for a login between the password and the second factor, or the forced enrolment. */
export type ChallengePurpose = 'login' | 'enrolment';

/** Lifetimes of the step-up tokens: a few minutes to type a code, a little more to set up an app. */
const CHALLENGE_TTL_SECONDS: Record<ChallengePurpose, number> = { login: 300, enrolment: 900 };
/** Wrong factors one `mfa_token` takes before it is void (each also counts towards the lockout). */
const MAX_CHALLENGE_ATTEMPTS = 5;

export type MfaMethod = 'totp' | 'webauthn' | 'recovery_code';

/** The factors a forced enrolment can set up. */
export type EnrolmentMethod = 'totp' | 'webauthn';

/** `auth/login`'s answer for a user with a factor: no tokens until `auth/mfa/verify`. */
export interface MfaRequired {
  readonly mfa_required: true;
  readonly mfa_token: string;
  readonly methods: MfaMethod[];
  readonly expires_in: number;
}

/** `auth/login`'s answer under `auth.mfa = required` for a user without a factor: the token only enrols one. */
export interface MfaEnrolmentRequired {
  readonly mfa_enrolment_required: true;
  readonly mfa_token: string;
  readonly methods: EnrolmentMethod[];
  readonly expires_in: number;
}

export type MfaStep = MfaRequired | MfaEnrolmentRequired;

/** A second factor as `auth/mfa/verify` takes it: exactly one of them. */
export interface FactorInput {
  readonly code?: string;
  readonly recovery_code?: string;
  /** A passkey assertion (`navigator.credentials.get` as JSON) to the challenge of `auth/mfa/passkey-options`. */
  readonly webauthn?: AssertionJSON;
}

/** A factor that passed: its method, and the passkey when it was one (both go into the `auth.login` audit row). */
export interface PassedFactor {
  readonly mfa: MfaMethod;
  readonly passkey_id?: string;
}

/** A registered passkey as its owner sees it (never the key). */
export interface PasskeyView {
  readonly id: string;
  readonly name: string;
  readonly transports: string[];
  readonly backed_up: boolean;
  readonly created_at: Date;
  readonly last_used_at: Date | null;
}

/** A passkey to register: the response of `navigator.credentials.create` as JSON, and a label. */
export interface PasskeyRegistration {
  readonly name?: string;
  readonly response: RegistrationJSON;
}

/** Proof of who asks to change a factor: a current TOTP code, the password, or a passkey assertion (to `me/mfa/passkeys/authentication-options`). */
export interface Reauthentication {
  readonly code?: string;
  readonly password?: string;
  readonly webauthn?: AssertionJSON;
}

export interface MfaStatus {
  readonly mode: MfaMode;
  readonly totp: { readonly status: 'none' | 'pending' | 'active'; readonly confirmed_at: Date | null };
  readonly passkeys: PasskeyView[];
  readonly recovery_codes_remaining: number;
}

export interface MfaServiceDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly changes: Changes;
  readonly secrets: SecretBox;
  readonly sessions: SessionStore;
  readonly policies: PolicyReader;
  /** The WebAuthn relying party (PUBLIC_URL's host and origin, and CORS_ORIGINS). */
  readonly relyingParty: RelyingParty;
}

/** Live passkey challenges a user may hold at once (a few browser tabs); asking for more drops the oldest. */
const MAX_LIVE_PASSKEY_CHALLENGES = 10;
/** Live passwordless sign-in challenges a tenant keeps (issued to no one, so not capped per user); more drop the oldest. */
export const MAX_LIVE_SIGN_IN_CHALLENGES = 10_000;

/** The passkey challenges of a user, or (null) the passwordless sign-in's, issued to no one. */
const ownedBy = (userId: string | null) => (eb: ExpressionBuilder<TenantDatabase, 'mfa_passkey_challenges'>) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId));

const PASSKEY_COLUMNS = ['id', 'name', 'transports', 'backed_up', 'created_at', 'last_used_at'] as const;

/**
 * TOTP, passkeys, recovery codes and the login step-up (SPEC section 19). Every change is
 * audited and makes an event (events/catalogue.ts); the sign-in itself stays in AuthService,
 * which asks `stepUp` before it opens a session and `verifyFactor` when the second factor comes.
 */
export class MfaService {
  constructor(private readonly deps: MfaServiceDeps) {}

  private db(tenant: TenantContext) {
    return tenantDb(this.deps.db, tenant.schema);
  }

  async status(tenant: TenantContext, userId: string): Promise<MfaStatus> {
    const db = this.db(tenant);
    const [policy, totp, passkeys, codes] = await Promise.all([
      this.deps.policies.policy(tenant),
      db.selectFrom('mfa_totp').select(['confirmed_at']).where('user_id', '=', userId).executeTakeFirst(),
      db.selectFrom('mfa_passkeys').select(PASSKEY_COLUMNS).where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute(),
      db.selectFrom('mfa_recovery_codes').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow(),
    ]);
    return {
      mode: policy.mfa,
      totp: { status: !totp ? 'none' : totp.confirmed_at ? 'active' : 'pending', confirmed_at: totp?.confirmed_at ?? null },
      passkeys,
      recovery_codes_remaining: Number(codes.n),
    };
  }

  /** The factors a user can sign in with (an empty list: none). */
  async methods(db: Kysely<TenantDatabase>, userId: string): Promise<MfaMethod[]> {
    const [totp, passkey, code] = await Promise.all([
      db.selectFrom('mfa_totp').select('id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst(),
      db.selectFrom('mfa_passkeys').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst(),
      db.selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', userId).where('used_at', 'is', null).limit(1).executeTakeFirst(),
    ]);
    const methods: MfaMethod[] = [];
    if (totp) methods.push('totp');
    if (passkey) methods.push('webauthn');
    if (methods.length && code) methods.push('recovery_code');
    return methods;
  }

  /**
   * Between a right password and a session: null when the user signs in now; else the step
   * they must take first, with its token (audited). `off` asks for nothing.
   */
  async stepUp(tenant: TenantContext, userId: string, policy: TenantPolicy, actor: AuditActor): Promise<MfaStep | null> {
    if (policy.mfa === 'off') return null;
    const db = this.db(tenant);
    const methods = await this.methods(db, userId);
    if (methods.length === 0 && policy.mfa !== 'required') return null;
    const purpose: ChallengePurpose = methods.length ? 'login' : 'enrolment';
    const token = randomToken('mfa_');
    const ttl = CHALLENGE_TTL_SECONDS[purpose];
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('mfa_challenges').where('user_id', '=', userId).where('expires_at', '<', new Date()).execute();
      await trx.insertInto('mfa_challenges').values({ user_id: userId, purpose, token_hash: sha256(token), expires_at: new Date(Date.now() + ttl * 1000) }).execute();
      const action = purpose === 'login' ? 'auth.mfa_required' : 'auth.mfa_enrolment_required';
      await writeAudit(trx, asUser(actor, userId), { action, entityType: 'users', entityId: userId, metadata: { methods } });
    });
    if (purpose === 'login') return { mfa_required: true, mfa_token: token, methods, expires_in: ttl };
    return { mfa_enrolment_required: true, mfa_token: token, methods: ['totp', 'webauthn'], expires_in: ttl };
  }

  /** The live challenge `token` names for this purpose: its id and user (401 when none). */
  async challenge(tenant: TenantContext, token: string, purpose: ChallengePurpose): Promise<{ id: string; userId: string }> {
    const row = await this.db(tenant)
      .selectFrom('mfa_challenges')
      .select(['id', 'user_id'])
      .where('token_hash', '=', sha256(token))
      .where('purpose', '=', purpose)
      .where('used_at', 'is', null)
      .where('expires_at', '>', new Date())
      .where('attempts', '<', MAX_CHALLENGE_ATTEMPTS)
      .executeTakeFirst();
    if (!row) throw new DomainError('auth.mfa_token_invalid');
    return { id: row.id, userId: row.user_id };
  }

  /** Marks a challenge used; false when another request used it first (single use). */
  async useChallenge(db: Kysely<TenantDatabase>, id: string): Promise<boolean> {
    const used = await db.updateTable('mfa_challenges').set({ used_at: new Date() }).where('id', '=', id).where('used_at', 'is', null).returning('id').executeTakeFirst();
    return !!used;
  }

  /** A wrong factor against a challenge: one attempt of its few. */
  async failedAttempt(tenant: TenantContext, id: string): Promise<void> {
    await this.db(tenant)
      .updateTable('mfa_challenges')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('id', '=', id)
      .execute();
  }

  /**
   * Checks the second factor of a login: the method that passed, or null (the caller counts
   * the failure). A TOTP code of a step already used and a used recovery code fail.
   */
  async verifyFactor(tenant: TenantContext, challenge: { id: string; userId: string }, input: FactorInput, actor: AuditActor): Promise<PassedFactor | null> {
    const given = [input.code, input.recovery_code, input.webauthn].filter((v) => v !== undefined).length;
    if (given !== 1) throw DomainError.invalid('code', text('reason.one_factor_input'));
    const { userId } = challenge;
    const db = this.db(tenant);
    if (input.webauthn !== undefined) {
      const passkeyId = await this.usePasskey(db, userId, challenge.id, input.webauthn, actor);
      return passkeyId ? { mfa: 'webauthn', passkey_id: passkeyId } : null;
    }
    const code = (input.code ?? '').trim();
    if (input.code !== undefined && isTotpCode(code)) return (await this.useTotpCode(db, tenant, userId, code)) ? { mfa: 'totp' } : null;
    return (await this.useRecoveryCode(tenant, userId, input.recovery_code ?? code, actor)) ? { mfa: 'recovery_code' } : null;
  }

  /** Accepts an active TOTP code of a step after the last one used, and records its step (one conditional UPDATE: two requests cannot both use it). */
  private async useTotpCode(db: Kysely<TenantDatabase>, tenant: TenantContext, userId: string, code: string, pending = false): Promise<boolean> {
    const row = await db.selectFrom('mfa_totp').select(['id', 'encrypted_secret', 'confirmed_at', 'last_used_step']).where('user_id', '=', userId).executeTakeFirst();
    if (!row || (row.confirmed_at === null) !== pending) return false;
    const secret = this.deps.secrets.decrypt(row.encrypted_secret, totpSecretContext(tenant.schema, row.id)) as string;
    const step = totpStep(secret, code);
    if (step === null || (row.last_used_step !== null && step <= row.last_used_step)) return false;
    const used = await db
      .updateTable('mfa_totp')
      .set({ last_used_step: step, updated_at: new Date() })
      .where('id', '=', row.id)
      .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
      .returning('id')
      .executeTakeFirst();
    return !!used;
  }

  private async useRecoveryCode(tenant: TenantContext, userId: string, code: string, actor: AuditActor): Promise<boolean> {
    return this.db(tenant)
      .transaction()
      .execute(async (trx) => {
        const used = await trx
          .updateTable('mfa_recovery_codes')
          .set({ used_at: new Date() })
          .where('user_id', '=', userId)
          .where('code_hash', '=', recoveryCodeHash(code))
          .where('used_at', 'is', null)
          .returning('id')
          .executeTakeFirst();
        if (!used) return false;
        const left = await trx.selectFrom('mfa_recovery_codes').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow();
        await writeAudit(trx, asUser(actor, userId), { action: 'mfa.recovery_code_used', entityType: 'users', entityId: userId, metadata: { method: 'recovery_code', remaining: Number(left.n) } });
        return true;
      });
  }

  private async enabled(tenant: TenantContext): Promise<TenantPolicy> {
    const policy = await this.deps.policies.policy(tenant);
    if (policy.mfa === 'off') throw new DomainError('mfa.disabled');
    return policy;
  }

  /**
   * A TOTP enrolment started from the user's own session: only after the password (or a
   * passkey). A session alone is not enough: a TOTP a stolen token added would keep the user
   * out, and its codes would then prove it is them for every other factor change.
   */
  async startOwnTotp(tenant: TenantContext, userId: string, proof: Reauthentication, actor: AuditActor): Promise<{ secret: string; otpauth_url: string }> {
    // Without a TOTP yet there is no code to give: a missing proof is refused naming the password.
    await this.reauthenticate(tenant, userId, proof, actor, { field: 'password', reason: text('reason.password_or_passkey') });
    return this.startTotp(tenant, userId, actor);
  }

  /**
   * Starts (or restarts) a TOTP enrolment: a new secret, pending until a code confirms it.
   * `keepPending`: a pending one is given again instead (a page shown anew keeps its key).
   */
  async startTotp(tenant: TenantContext, userId: string, actor: AuditActor, keepPending = false): Promise<{ secret: string; otpauth_url: string }> {
    const policy = await this.enabled(tenant);
    let secret = newTotpSecret();
    const db = this.db(tenant);
    const user = await db.selectFrom('users').select(['email']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    await db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('mfa_totp').select(['id', 'confirmed_at', 'encrypted_secret']).where('user_id', '=', userId).forUpdate().executeTakeFirst();
      if (existing?.confirmed_at) throw new DomainError('mfa.already_enrolled');
      if (existing && keepPending) {
        secret = this.deps.secrets.decrypt(existing.encrypted_secret, totpSecretContext(tenant.schema, existing.id)) as string;
        return;
      }
      if (existing) await trx.deleteFrom('mfa_totp').where('id', '=', existing.id).execute();
      const id = randomUUID();
      await trx.insertInto('mfa_totp').values({ id, user_id: userId, encrypted_secret: this.deps.secrets.encrypt(secret, totpSecretContext(tenant.schema, id)) }).execute();
      await writeAudit(trx, actor, { action: 'mfa.totp_started', entityType: 'users', entityId: userId, metadata: { method: 'totp' } });
    });
    return { secret, otpauth_url: otpauthUrl(secret, user.email, displayName(tenant, policy)) };
  }

  /** The first code makes a pending enrolment active; returns ten new recovery codes (shown once). */
  async confirmTotp(tenant: TenantContext, userId: string, code: string, actor: AuditActor): Promise<{ recovery_codes: string[] }> {
    await this.enabled(tenant);
    const db = this.db(tenant);
    const pending = await db.selectFrom('mfa_totp').select(['id', 'confirmed_at']).where('user_id', '=', userId).executeTakeFirst();
    if (!pending) throw DomainError.notFound('mfa');
    if (pending.confirmed_at) throw new DomainError('mfa.already_enrolled');
    if (!(await this.useTotpCode(db, tenant, userId, code.trim(), true))) throw DomainError.invalid('code', text('reason.mfa_code'), 'mfa.invalid_code');
    return db.transaction().execute(async (trx) => {
      const confirmed = await trx.updateTable('mfa_totp').set({ confirmed_at: new Date(), updated_at: new Date() }).where('id', '=', pending.id).where('confirmed_at', 'is', null).returning('id').executeTakeFirst();
      if (!confirmed) throw new DomainError('mfa.already_enrolled');
      await writeAudit(trx, actor, { action: 'mfa.totp_confirmed', entityType: 'users', entityId: userId, metadata: { method: 'totp' } });
      return { recovery_codes: await this.replaceRecoveryCodes(trx, userId, actor) };
    });
  }

  /** Ten new recovery codes in place of the user's old ones (audited); the codes, to show once. */
  async replaceRecoveryCodes(trx: Kysely<TenantDatabase>, userId: string, actor: AuditActor): Promise<string[]> {
    const { codes, hashes } = newRecoveryCodes();
    await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
    await trx.insertInto('mfa_recovery_codes').values(hashes.map((code_hash) => ({ user_id: userId, code_hash }))).execute();
    await writeAudit(trx, actor, { action: 'mfa.recovery_codes_generated', entityType: 'users', entityId: userId, metadata: { count: codes.length } });
    return codes;
  }

  /**
   * A current code (of an active TOTP), the password or a passkey assertion, before a factor is
   * changed; 400 naming the field otherwise (`missing`: the refusal when none is given). A wrong
   * code or password counts towards the lockout; while the account is locked none is checked
   * (lockout.ts, checkSessionProof).
   */
  private async reauthenticate(
    tenant: TenantContext,
    userId: string,
    proof: Reauthentication,
    actor: AuditActor,
    missing: { field: string; reason: Text } = { field: 'code', reason: text('reason.code_or_password') },
  ): Promise<void> {
    const db = this.db(tenant);
    const asked = this.proofOf(db, tenant, userId, proof, actor);
    if (!asked) throw DomainError.invalid(missing.field, missing.reason);
    await checkSessionProof(db, userId, await this.deps.policies.policy(tenant), actor, asked);
  }

  /** What `proof` gives, in the order code, password, passkey; undefined when it gives none. */
  private proofOf(db: Kysely<TenantDatabase>, tenant: TenantContext, userId: string, { code, password, webauthn }: Reauthentication, actor: AuditActor): SessionProof | undefined {
    const common = { code: 'mfa.invalid_code', context: 'reauthentication' } as const;
    if (code !== undefined) return { ...common, field: 'code', wrong: text('reason.mfa_code'), failure: 'bad_mfa_factor', check: () => this.useTotpCode(db, tenant, userId, code.trim()) };
    if (password !== undefined) return { ...common, field: 'password', wrong: text('reason.current_password'), failure: 'bad_password', check: isPassword(password) };
    if (webauthn === undefined) return undefined;
    // A signature cannot be guessed: not counted (a failure is audited by usePasskey).
    return { ...common, field: 'webauthn', wrong: text('reason.passkey_response'), failure: 'bad_mfa_factor', counts: false, check: async () => (await this.usePasskey(db, userId, null, webauthn, actor)) !== null };
  }

  /** Removes the user's TOTP (pending or active) and their recovery codes. */
  async disableTotp(tenant: TenantContext, userId: string, proof: Reauthentication, actor: AuditActor): Promise<void> {
    const db = this.db(tenant);
    const existing = await db.selectFrom('mfa_totp').select(['id', 'confirmed_at']).where('user_id', '=', userId).executeTakeFirst();
    if (!existing) throw DomainError.notFound('mfa');
    // A pending enrolment protects nothing yet: the password alone removes it, and so does a code of an active one.
    await this.reauthenticate(tenant, userId, proof, actor);
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('mfa_totp').where('id', '=', existing.id).execute();
      await this.dropOrphanRecoveryCodes(trx, userId);
      await writeAudit(trx, actor, { action: 'mfa.totp_disabled', entityType: 'users', entityId: userId, metadata: { method: 'totp', was: existing.confirmed_at ? 'active' : 'pending' } });
    });
  }

  /** New recovery codes for a user with a factor (a current code or the password first). */
  async regenerateRecoveryCodes(tenant: TenantContext, userId: string, proof: Reauthentication, actor: AuditActor): Promise<{ recovery_codes: string[] }> {
    await this.enabled(tenant);
    const db = this.db(tenant);
    if ((await this.methods(db, userId)).filter((m) => m !== 'recovery_code').length === 0) throw DomainError.notFound('mfa');
    await this.reauthenticate(tenant, userId, proof, actor);
    return db.transaction().execute(async (trx) => ({ recovery_codes: await this.replaceRecoveryCodes(trx, userId, actor) }));
  }

  /** With no factor left, recovery codes would be a factor of their own: they go too. */
  private async dropOrphanRecoveryCodes(trx: Kysely<TenantDatabase>, userId: string): Promise<void> {
    if ((await this.methods(trx, userId)).some((m) => m !== 'recovery_code')) return;
    await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
  }

  /**
   * Stores a new single-use passkey challenge; its owner's expired ones go, and all but their
   * latest few. The owner is a user, or no one for a passwordless sign-in's (capped per tenant
   * at MAX_LIVE_SIGN_IN_CHALLENGES: the table stays bounded whoever asks).
   */
  private async storePasskeyChallenge(trx: Kysely<TenantDatabase>, userId: string | null, purpose: 'registration' | 'authentication', challenge: string, mfaChallengeId: string | null): Promise<void> {
    const keep = userId === null ? MAX_LIVE_SIGN_IN_CHALLENGES : MAX_LIVE_PASSKEY_CHALLENGES;
    await trx
      .deleteFrom('mfa_passkey_challenges')
      .where(ownedBy(userId))
      .where((eb) =>
        eb.or([
          eb('expires_at', '<', new Date()),
          // Past the owner's cap, the oldest go (one lifetime for all: the latest expire last).
          eb('id', 'in', eb.selectFrom('mfa_passkey_challenges').select('id').where(ownedBy(userId)).orderBy('expires_at', 'desc').orderBy('id').offset(keep - 1).limit(1000)),
        ]),
      )
      .execute();
    await trx
      .insertInto('mfa_passkey_challenges')
      .values({ user_id: userId, purpose, challenge, mfa_challenge_id: mfaChallengeId, expires_at: new Date(Date.now() + PASSKEY_CHALLENGE_TTL_SECONDS * 1000) })
      .execute();
  }

  /**
   * Uses up the live challenge a response's clientDataJSON names, if it is this user's, for this
   * purpose and this step (one DELETE: a second request with it finds nothing). The challenge, or
   * null: unknown, used, expired, another user's or another step's. `userId` null: a
   * passwordless sign-in's, issued to no one.
   */
  private async takePasskeyChallenge(db: Kysely<TenantDatabase>, userId: string | null, purpose: 'registration' | 'authentication', clientDataJSON: string, mfaChallengeId: string | null): Promise<string | null> {
    const challenge = challengeOf(clientDataJSON);
    if (!challenge) return null;
    const row = await db
      .deleteFrom('mfa_passkey_challenges')
      .where('challenge', '=', challenge)
      .where(ownedBy(userId))
      .where('purpose', '=', purpose)
      .where('expires_at', '>', new Date())
      .where((eb) => (mfaChallengeId === null ? eb('mfa_challenge_id', 'is', null) : eb('mfa_challenge_id', '=', mfaChallengeId)))
      .returning('challenge')
      .executeTakeFirst();
    return row?.challenge ?? null;
  }

  /**
   * Registration options for a new passkey of the user (their own session with `proof`: a
   * current code, the password or a passkey; or the forced enrolment's `mfa_token` as
   * `mfaChallengeId`): RP ID and name, the user, their passkeys excluded, attestation `none`.
   * The challenge is stored, single use, five minutes.
   */
  async passkeyRegistrationOptions(tenant: TenantContext, userId: string, actor: AuditActor, mfaChallengeId: string | null = null, proof: Reauthentication = {}): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const policy = await this.enabled(tenant);
    // A passkey signs in alone: a session is not enough to add one (a stolen token would keep a
    // way in). The forced enrolment's step already took the password.
    if (mfaChallengeId === null) await this.reauthenticate(tenant, userId, proof, actor);
    const db = this.db(tenant);
    const user = await db.selectFrom('users').select(['email']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    const existing = await db.selectFrom('mfa_passkeys').select(['credential_id', 'transports']).where('user_id', '=', userId).execute();
    const options = await registrationOptions(this.deps.relyingParty, {
      rpName: displayName(tenant, policy),
      userId,
      userName: user.email,
      exclude: existing.map((c) => ({ id: c.credential_id, transports: c.transports })),
    });
    await db.transaction().execute(async (trx) => {
      await this.storePasskeyChallenge(trx, userId, 'registration', options.challenge, mfaChallengeId);
      await writeAudit(trx, actor, { action: 'mfa.passkey_started', entityType: 'users', entityId: userId, metadata: { method: 'webauthn' } });
    });
    return options;
  }

  /** The forced enrolment's registration options, for the user the `mfa_token` stands for. */
  async enrolmentPasskeyOptions(tenant: TenantContext, mfaToken: string, actor: AuditActor): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const challenge = await this.challenge(tenant, mfaToken, 'enrolment');
    return this.passkeyRegistrationOptions(tenant, challenge.userId, asUser(actor, challenge.userId), challenge.id);
  }

  /**
   * Verifies a registration response against its stored challenge (used up whatever the outcome),
   * the origins and the RP ID, and stores the credential. The user's first factor also gets ten
   * recovery codes, in this answer only. 400 `mfa.passkey_invalid` naming `response` otherwise.
   */
  async registerPasskey(tenant: TenantContext, userId: string, input: PasskeyRegistration, actor: AuditActor, mfaChallengeId: string | null = null): Promise<PasskeyView & { recovery_codes?: string[] }> {
    await this.enabled(tenant);
    const name = (input.name ?? 'Passkey').trim();
    if (!name) throw DomainError.invalid('name', text('reason.required'));
    const db = this.db(tenant);
    const challenge = await this.takePasskeyChallenge(db, userId, 'registration', input.response.response.clientDataJSON, mfaChallengeId);
    const credential = challenge && (await verifyRegistration(this.deps.relyingParty, input.response, challenge));
    if (!credential) throw DomainError.invalid('response', text('reason.passkey_response'), 'mfa.passkey_invalid');
    return conflictOnUnique(
      () =>
        db.transaction().execute(async (trx) => {
          const firstFactor = (await this.methods(trx, userId)).length === 0;
          const row = await trx
            .insertInto('mfa_passkeys')
            .values({ user_id: userId, credential_id: credential.credentialId, public_key: credential.publicKey, counter: credential.counter, transports: credential.transports, name, backed_up: credential.backedUp })
            .returning(PASSKEY_COLUMNS)
            .executeTakeFirstOrThrow();
          await writeAudit(trx, actor, { action: 'mfa.passkey_registered', entityType: 'users', entityId: userId, metadata: { method: 'webauthn', passkey_id: row.id, name, backed_up: row.backed_up } });
          if (!firstFactor) return row;
          return { ...row, recovery_codes: await this.replaceRecoveryCodes(trx, userId, actor) };
        }),
      new DomainError('mfa.passkey_exists'),
    );
  }

  /** Removes one of the user's passkeys (a current TOTP code or the password first). */
  async removePasskey(tenant: TenantContext, userId: string, passkeyId: string, proof: Reauthentication, actor: AuditActor): Promise<void> {
    const db = this.db(tenant);
    const existing = await db.selectFrom('mfa_passkeys').select(['id', 'name']).where('id', '=', passkeyId).where('user_id', '=', userId).executeTakeFirst();
    if (!existing) throw DomainError.notFound('mfa');
    await this.reauthenticate(tenant, userId, proof, actor);
    await db.transaction().execute(async (trx) => {
      const removed = await trx.deleteFrom('mfa_passkeys').where('id', '=', existing.id).returning('id').executeTakeFirst();
      if (!removed) throw DomainError.notFound('mfa');
      await this.dropOrphanRecoveryCodes(trx, userId);
      await writeAudit(trx, actor, { action: 'mfa.passkey_removed', entityType: 'users', entityId: userId, metadata: { method: 'webauthn', passkey_id: existing.id, name: existing.name } });
    });
  }

  /**
   * Authentication options for the second step of a login (`auth/mfa/passkey-options`): the
   * user's passkeys allowed, the challenge stored for this `mfa_token` only. 404 when the
   * user has no passkey.
   */
  async loginPasskeyOptions(tenant: TenantContext, mfaToken: string, actor: AuditActor): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const challenge = await this.challenge(tenant, mfaToken, 'login');
    return this.assertionOptions(tenant, challenge.userId, challenge.id, asUser(actor, challenge.userId));
  }

  /**
   * Authentication options for a signed-in user proving it is them before a factor changes
   * (`me/mfa/passkeys/authentication-options`; the assertion goes in as `webauthn`).
   */
  async reauthenticationPasskeyOptions(tenant: TenantContext, userId: string, actor: AuditActor): Promise<PublicKeyCredentialRequestOptionsJSON> {
    await this.enabled(tenant);
    return this.assertionOptions(tenant, userId, null, actor);
  }

  /** Options allowing the user's passkeys, their challenge stored for the step (`mfaChallengeId`) or for the user's own session (null). */
  private async assertionOptions(tenant: TenantContext, userId: string, mfaChallengeId: string | null, actor: AuditActor): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const db = this.db(tenant);
    const credentials = await db.selectFrom('mfa_passkeys').select(['credential_id', 'transports']).where('user_id', '=', userId).execute();
    if (credentials.length === 0) throw DomainError.notFound('mfa');
    const options = await authenticationOptions(this.deps.relyingParty, credentials.map((c) => ({ id: c.credential_id, transports: c.transports })));
    await db.transaction().execute(async (trx) => {
      await this.storePasskeyChallenge(trx, userId, 'authentication', options.challenge, mfaChallengeId);
      await writeAudit(trx, actor, { action: 'auth.mfa_passkey_challenge', entityType: 'users', entityId: userId, metadata: { method: 'webauthn', purpose: mfaChallengeId ? 'login' : 'reauthentication' } });
    });
    return options;
  }

  /**
   * Checks a passkey assertion: the challenge of this login step, or of the user's own session
   * when `mfaChallengeId` is null (used up either way), one of the user's own credentials (another user's or another tenant's is unknown here), the signature,
   * and a counter that rose. The passkey's id, or null. A valid signature with a counter that did
   * not rise means a cloned authenticator: refused, and audited.
   */
  private async usePasskey(db: Kysely<TenantDatabase>, userId: string, mfaChallengeId: string | null, response: AssertionJSON, actor: AuditActor): Promise<string | null> {
    const expected = await this.takePasskeyChallenge(db, userId, 'authentication', response.response.clientDataJSON, mfaChallengeId);
    if (!expected) return null;
    const row = await db.selectFrom('mfa_passkeys').select(['id', 'user_id', 'credential_id', 'public_key', 'counter']).where('user_id', '=', userId).where('credential_id', '=', response.id).executeTakeFirst();
    return row ? this.acceptAssertion(db, row, expected, response, actor, false) : null;
  }

  /**
   * Options for a passwordless sign-in (`auth/passkey/options`): no credentials listed (the
   * authenticator offers its discoverable passkeys for this RP), user verification required,
   * the challenge stored for no one, single use, five minutes.
   */
  async signInPasskeyOptions(tenant: TenantContext): Promise<PublicKeyCredentialRequestOptionsJSON> {
    await this.enabled(tenant);
    const options = await authenticationOptions(this.deps.relyingParty, []);
    await this.db(tenant)
      .transaction()
      .execute((trx) => this.storePasskeyChallenge(trx, null, 'authentication', options.challenge, null));
    return options;
  }

  /**
   * Checks a passwordless sign-in's assertion: a challenge of `signInPasskeyOptions` (used up
   * either way), the credential it names (whose user is then known), the user handle matching
   * it, the signature with the user verified, and a counter that rose. The user (null when no
   * passkey of this tenant has that credential ID) and the passkey's id (null when it failed).
   */
  async passwordlessPasskey(tenant: TenantContext, response: AssertionJSON, actor: AuditActor): Promise<{ userId: string | null; passkeyId: string | null }> {
    await this.enabled(tenant);
    const db = this.db(tenant);
    const expected = await this.takePasskeyChallenge(db, null, 'authentication', response.response.clientDataJSON, null);
    const row = await db.selectFrom('mfa_passkeys').select(['id', 'user_id', 'credential_id', 'public_key', 'counter']).where('credential_id', '=', response.id).executeTakeFirst();
    if (!row) return { userId: null, passkeyId: null };
    const handle = response.response.userHandle;
    if (!expected || (handle && handle !== userHandleOf(row.user_id))) return { userId: row.user_id, passkeyId: null };
    return { userId: row.user_id, passkeyId: await this.acceptAssertion(db, row, expected, response, actor, true) };
  }

  /** The signature of an assertion to `expected` by the stored credential `row`, and its counter (see `usePasskey`): the passkey's id, or null. */
  private async acceptAssertion(
    db: Kysely<TenantDatabase>,
    row: { id: string; user_id: string; credential_id: string; public_key: Buffer; counter: string },
    expected: string,
    response: AssertionJSON,
    actor: AuditActor,
    requireUserVerification: boolean,
  ): Promise<string | null> {
    const userId = row.user_id;
    const checked = await verifyAssertion(this.deps.relyingParty, response, expected, { id: row.credential_id, publicKey: row.public_key }, requireUserVerification);
    if (!checked) return null;
    const stored = Number(row.counter);
    if ((checked.counter > 0 || stored > 0) && checked.counter <= stored) {
      await db.transaction().execute((trx) =>
        writeAudit(trx, asUser(actor, userId), { action: 'mfa.passkey_clone_suspected', entityType: 'users', entityId: userId, metadata: { method: 'webauthn', passkey_id: row.id, counter: checked.counter, stored } }),
      );
      return null;
    }
    // Conditional on the counter read: of two assertions racing with one counter, one wins.
    const used = await db
      .updateTable('mfa_passkeys')
      .set({ counter: checked.counter, backed_up: checked.backedUp, last_used_at: new Date() })
      .where('id', '=', row.id)
      .where('counter', '=', row.counter)
      .returning('id')
      .executeTakeFirst();
    return used ? row.id : null;
  }

  /**
   * An administrator's reset of every factor of a user (lost phone): TOTP, passkeys and recovery
   * codes go, and every session of the user ends. The out-rank rule applies (the same
   * check as every other change to a user).
   */
  async reset(tenant: TenantContext, userId: string, actor: AuditActor): Promise<void> {
    await transact(this.deps.db, this.deps.changes, tenant, async (work) => {
      const { trx } = work;
      await accessGuard.checkUserChange(trx, actorOf(actor), userId);
      const user = await trx.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
      if (!user) throw DomainError.notFound('user');
      const totp = await trx.deleteFrom('mfa_totp').where('user_id', '=', userId).returning('id').execute();
      const passkeys = await trx.deleteFrom('mfa_passkeys').where('user_id', '=', userId).returning('id').execute();
      const codes = await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).returning('id').execute();
      await trx.deleteFrom('mfa_challenges').where('user_id', '=', userId).execute();
      await trx.deleteFrom('mfa_passkey_challenges').where('user_id', '=', userId).execute();
      const revoked = await this.deps.sessions.revokeAll(work, userId, 'mfa_reset');
      await writeAudit(trx, actor, {
        action: 'mfa.reset',
        entityType: 'users',
        entityId: userId,
        metadata: { totp: totp.length > 0, passkeys: passkeys.length, recovery_codes: codes.length, revoked_sessions: revoked.length },
      });
    });
  }
}
