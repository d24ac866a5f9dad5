import type { Kysely } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError, text, type ErrorCode, type Text } from '../errors.js';
import type { TenantPolicy } from '../settings/policy.js';
import { verifyPassword } from './passwords.js';

/** A lock still in force. */
export function isLocked(lockedUntil: Date | null): boolean {
  return lockedUntil !== null && lockedUntil > new Date();
}

/**
 * Audits a failed proof (`auth.login_failed` with its reason); if it `counts`, counts it and,
 * at the policy's threshold, locks the account (each repeat doubles the lock).
 */
export async function recordFailure(db: Kysely<TenantDatabase>, userId: string, policy: TenantPolicy, actor: AuditActor, reason: string, counts: boolean, context?: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await writeAudit(trx, actor, { action: 'auth.login_failed', entityType: 'users', entityId: userId, metadata: context ? { reason, context } : { reason } });
    if (!counts) return;
    const row = await trx
      .updateTable('users')
      .set((eb) => ({ failed_login_count: eb('failed_login_count', '+', 1) }))
      .where('id', '=', userId)
      .returning(['failed_login_count', 'lockout_count'])
      .executeTakeFirstOrThrow();
    if (row.failed_login_count >= policy.lockout.maxFailures) await lock(trx, userId, policy, actor, row.lockout_count);
  });
}

/** Locks the account for the policy's time, doubled by each earlier lockout; the failures start again from nought. */
async function lock(trx: Kysely<TenantDatabase>, userId: string, policy: TenantPolicy, actor: AuditActor, lockouts: number): Promise<void> {
  const minutes = Math.min(policy.lockout.durationMinutes * 2 ** lockouts, policy.lockout.maxDurationMinutes);
  const until = new Date(Date.now() + minutes * 60_000);
  await trx.updateTable('users').set({ failed_login_count: 0, lockout_count: lockouts + 1, locked_until: until, updated_at: new Date() }).where('id', '=', userId).execute();
  await writeAudit(trx, actor, { action: 'auth.lockout', entityType: 'users', entityId: userId, metadata: { minutes, until: until.toISOString() } });
}

/** What a signed-in user proves before a sensitive change, and how a wrong proof is answered. */
export interface SessionProof {
  /** The request field that carries the proof. */
  readonly field: string;
  readonly code: ErrorCode;
  /** The field's reason when the proof is wrong. */
  readonly wrong: Text;
  /** The audited reason of a wrong proof: `bad_password` or `bad_mfa_factor` (a passkey's is audited where it is checked). */
  readonly failure: 'bad_password' | 'bad_mfa_factor';
  /** False for a proof that cannot be guessed (a passkey): not counted, only refused while locked. */
  readonly counts?: boolean;
  /** Where it was asked (audited): `password_change`, `reauthentication`. */
  readonly context: string;
  readonly check: () => Promise<boolean>;
}

/**
 * A password or code asked of a signed-in user (changing the password, or a second factor): a
 * wrong one counts towards the lockout like a failed sign-in, and while the account is locked
 * none is checked, so a stolen session cannot guess without limit. Each check first claims a
 * failure in one statement that only an unlocked account below the threshold passes, so
 * concurrent guesses cannot all slip past the lock; a right proof clears the count, as a
 * sign-in does. A proof that cannot be guessed (`counts: false`, a passkey) is only refused
 * while locked. 400 naming the field.
 */
export async function checkSessionProof(db: Kysely<TenantDatabase>, userId: string, policy: TenantPolicy, actor: AuditActor, proof: SessionProof): Promise<void> {
  const refuseLocked = async (): Promise<never> => {
    const user = await db.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user) throw DomainError.notFound('user');
    await recordFailure(db, userId, policy, actor, 'locked', false, proof.context);
    throw DomainError.invalid(proof.field, text('reason.account_locked'), proof.code);
  };
  if (proof.counts === false) {
    const user = await db.selectFrom('users').select('locked_until').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!user || isLocked(user.locked_until)) return refuseLocked();
    if (await proof.check()) return;
    throw DomainError.invalid(proof.field, proof.wrong, proof.code);
  }
  const now = new Date();
  const claimed = await db
    .updateTable('users')
    .set((eb) => ({ failed_login_count: eb('failed_login_count', '+', 1) }))
    .where('id', '=', userId)
    .where('deleted_at', 'is', null)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .where('failed_login_count', '<', policy.lockout.maxFailures)
    .returning(['failed_login_count', 'lockout_count'])
    .executeTakeFirst();
  if (!claimed) return refuseLocked();
  if (await proof.check()) {
    await db.updateTable('users').set({ failed_login_count: 0 }).where('id', '=', userId).execute();
    return;
  }
  await db.transaction().execute(async (trx) => {
    await writeAudit(trx, actor, { action: 'auth.login_failed', entityType: 'users', entityId: userId, metadata: { reason: proof.failure, context: proof.context } });
    if (claimed.failed_login_count >= policy.lockout.maxFailures) await lock(trx, userId, policy, actor, claimed.lockout_count);
  });
  throw DomainError.invalid(proof.field, proof.wrong, proof.code);
}

/** Whether `password` is the user's current one (false for a user without a password). */
export async function passwordMatches(db: Kysely<TenantDatabase>, userId: string, password: string): Promise<boolean> {
  const user = await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst();
  return !!user?.password_hash && (await verifyPassword(user.password_hash, password));
}
