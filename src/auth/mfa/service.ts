import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { accessGuard, actorOf } from '../../access/guard.js';
import { writeAudit, type AuditActor } from '../../audit/audit.js';
import type { Changes } from '../../cache/changes.js';
import { tenantDb } from '../../db/database.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import type { TenantDatabase } from '../../db/types.js';
import { transact } from '../../db/work.js';
import { DomainError, text } from '../../errors.js';
import { totpSecretContext, type SecretBox } from '../../records/secrets.js';
import { displayName, type MfaMode, type PolicyReader, type TenantPolicy } from '../../settings/policy.js';
import type { TenantContext } from '../../tenancy/directory.js';
import { verifyPassword } from '../passwords.js';
import type { SessionStore } from '../sessions.js';
import { randomToken, sha256 } from '../tokens.js';
import { newRecoveryCodes, recoveryCodeHash } from './recovery.js';
import { isTotpCode, newTotpSecret, otpauthUrl, totpStep } from './totp.js';

/** What stands for a login between the password and the second factor, or the forced enrolment. */
export type ChallengePurpose = 'login' | 'enrolment';

/** Lifetimes of the step-up tokens: a few minutes to type a code, a little more to set up an app. */
const CHALLENGE_TTL_SECONDS: Record<ChallengePurpose, number> = { login: 300, enrolment: 900 };
/** Wrong factors one `mfa_token` takes before it is void (each also counts towards the lockout). */
const MAX_CHALLENGE_ATTEMPTS = 5;

export type MfaMethod = 'totp' | 'recovery_code';

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
  readonly methods: 'totp'[];
  readonly expires_in: number;
}

export type MfaStep = MfaRequired | MfaEnrolmentRequired;

/** A second factor as `auth/mfa/verify` takes it: exactly one of them. */
export interface FactorInput {
  readonly code?: string;
  readonly recovery_code?: string;
}

/** Proof of who asks to change a factor: a current TOTP code or the password. */
export interface Reauthentication {
  readonly code?: string;
  readonly password?: string;
}

export interface MfaStatus {
  readonly mode: MfaMode;
  readonly totp: { readonly status: 'none' | 'pending' | 'active'; readonly confirmed_at: Date | null };
  readonly recovery_codes_remaining: number;
}

export interface MfaServiceDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly changes: Changes;
  readonly secrets: SecretBox;
  readonly sessions: SessionStore;
  readonly policies: PolicyReader;
}

/**
 * TOTP, recovery codes and the login step-up (SPEC section 19). Every change is
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
    const [policy, totp, codes] = await Promise.all([
      this.deps.policies.policy(tenant),
      db.selectFrom('mfa_totp').select(['confirmed_at']).where('user_id', '=', userId).executeTakeFirst(),
      db.selectFrom('mfa_recovery_codes').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow(),
    ]);
    return {
      mode: policy.mfa,
      totp: { status: !totp ? 'none' : totp.confirmed_at ? 'active' : 'pending', confirmed_at: totp?.confirmed_at ?? null },
      recovery_codes_remaining: Number(codes.n),
    };
  }

  /** The factors a user can sign in with (an empty list: none). */
  async methods(db: Kysely<TenantDatabase>, userId: string): Promise<MfaMethod[]> {
    const [totp, code] = await Promise.all([
      db.selectFrom('mfa_totp').select('id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst(),
      db.selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', userId).where('used_at', 'is', null).limit(1).executeTakeFirst(),
    ]);
    const methods: MfaMethod[] = [];
    if (totp) methods.push('totp');
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
      await writeAudit(trx, { ...actor, actorUserId: userId, actorType: 'user' }, { action, entityType: 'users', entityId: userId, metadata: { methods } });
    });
    if (purpose === 'login') return { mfa_required: true, mfa_token: token, methods, expires_in: ttl };
    return { mfa_enrolment_required: true, mfa_token: token, methods: ['totp'], expires_in: ttl };
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
  async verifyFactor(tenant: TenantContext, userId: string, input: FactorInput, actor: AuditActor): Promise<MfaMethod | null> {
    const given = [input.code, input.recovery_code].filter((v) => v !== undefined).length;
    if (given !== 1) throw DomainError.invalid('code', text('reason.one_factor_input'));
    const db = this.db(tenant);
    const code = (input.code ?? '').trim();
    if (input.code !== undefined && isTotpCode(code)) return (await this.useTotpCode(db, tenant, userId, code)) ? 'totp' : null;
    return (await this.useRecoveryCode(tenant, userId, input.recovery_code ?? code, actor)) ? 'recovery_code' : null;
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
        await writeAudit(trx, { ...actor, actorUserId: userId, actorType: 'user' }, { action: 'mfa.recovery_code_used', entityType: 'users', entityId: userId, metadata: { method: 'recovery_code', remaining: Number(left.n) } });
        return true;
      });
  }

  private async enabled(tenant: TenantContext): Promise<TenantPolicy> {
    const policy = await this.deps.policies.policy(tenant);
    if (policy.mfa === 'off') throw new DomainError('mfa.disabled');
    return policy;
  }

  /** Starts (or restarts) a TOTP enrolment: a new secret, pending until a code confirms it. */
  async startTotp(tenant: TenantContext, userId: string, actor: AuditActor): Promise<{ secret: string; otpauth_url: string }> {
    const policy = await this.enabled(tenant);
    const secret = newTotpSecret();
    const db = this.db(tenant);
    const user = await db.selectFrom('users').select(['email']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    await db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('mfa_totp').select(['id', 'confirmed_at']).where('user_id', '=', userId).forUpdate().executeTakeFirst();
      if (existing?.confirmed_at) throw new DomainError('mfa.already_enrolled');
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

  /** A current code (of an active TOTP) or the password, before a factor is changed; 400 naming the field otherwise. */
  private async reauthenticate(tenant: TenantContext, userId: string, proof: Reauthentication): Promise<void> {
    const db = this.db(tenant);
    if (proof.code !== undefined) {
      if (!(await this.useTotpCode(db, tenant, userId, proof.code.trim()))) throw DomainError.invalid('code', text('reason.mfa_code'), 'mfa.invalid_code');
      return;
    }
    if (proof.password !== undefined) {
      const user = await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst();
      if (!user?.password_hash || !(await verifyPassword(user.password_hash, proof.password))) throw DomainError.invalid('password', text('reason.current_password'), 'mfa.invalid_code');
      return;
    }
    throw DomainError.invalid('code', text('reason.code_or_password'));
  }

  /** Removes the user's TOTP (pending or active) and their recovery codes. */
  async disableTotp(tenant: TenantContext, userId: string, proof: Reauthentication, actor: AuditActor): Promise<void> {
    const db = this.db(tenant);
    const existing = await db.selectFrom('mfa_totp').select(['id', 'confirmed_at']).where('user_id', '=', userId).executeTakeFirst();
    if (!existing) throw DomainError.notFound('mfa');
    // A pending enrolment protects nothing yet: the password alone removes it, and so does a code of an active one.
    await this.reauthenticate(tenant, userId, proof);
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('mfa_totp').where('id', '=', existing.id).execute();
      // With no factor left, recovery codes would be a factor of their own.
      await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
      await writeAudit(trx, actor, { action: 'mfa.totp_disabled', entityType: 'users', entityId: userId, metadata: { method: 'totp', was: existing.confirmed_at ? 'active' : 'pending' } });
    });
  }

  /** New recovery codes for a user with a factor (a current code or the password first). */
  async regenerateRecoveryCodes(tenant: TenantContext, userId: string, proof: Reauthentication, actor: AuditActor): Promise<{ recovery_codes: string[] }> {
    await this.enabled(tenant);
    const db = this.db(tenant);
    if ((await this.methods(db, userId)).filter((m) => m !== 'recovery_code').length === 0) throw DomainError.notFound('mfa');
    await this.reauthenticate(tenant, userId, proof);
    return db.transaction().execute(async (trx) => ({ recovery_codes: await this.replaceRecoveryCodes(trx, userId, actor) }));
  }

  /**
   * An administrator's reset of every factor of a user (lost phone): TOTP and recovery codes
   * go, and every session of the user ends. The out-rank rule applies (the same
   * check as every other change to a user).
   */
  async reset(tenant: TenantContext, userId: string, actor: AuditActor): Promise<void> {
    await transact(this.deps.db, this.deps.changes, tenant, async (work) => {
      const { trx } = work;
      await accessGuard.checkUserChange(trx, actorOf(actor), userId);
      const user = await trx.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
      if (!user) throw DomainError.notFound('user');
      const totp = await trx.deleteFrom('mfa_totp').where('user_id', '=', userId).returning('id').execute();
      const codes = await trx.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).returning('id').execute();
      await trx.deleteFrom('mfa_challenges').where('user_id', '=', userId).execute();
      const revoked = await this.deps.sessions.revokeAll(work, userId, 'mfa_reset');
      await writeAudit(trx, actor, {
        action: 'mfa.reset',
        entityType: 'users',
        entityId: userId,
        metadata: { totp: totp.length > 0, recovery_codes: codes.length, revoked_sessions: revoked.length },
      });
    });
  }
}
