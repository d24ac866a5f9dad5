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

/** A user's counts after a failure was counted: what decides a lockout. */
interface Counted {
  readonly failed_login_count: number;
  readonly lockout_count: number;
}

/**
 * Audits a failed proof (`auth.login_failed` with its reason); if it `counts`, counts it and,
 * at the policy's threshold, locks the account (each repeat doubles the lock).
 */
export async function recordFailure(db: Kysely<TenantDatabase>, userId: string, policy: TenantPolicy, actor: AuditActor, reason: string, counts: boolean, context?: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const counted = counts
      ? await trx
          .updateTable('users')
          .set((eb) => ({ failed_login_count: eb('failed_login_count', '+', 1) }))
          .where('id', '=', userId)
          .returning(['failed_login_count', 'lockout_count'])
          .executeTakeFirstOrThrow()
      : null;
    await failed(trx, userId, policy, actor, context ? { reason, context } : { reason }, counted);
  });
}

/** The audit row of a failure and, once `counted` reaches the policy's threshold, the lock: the policy's time, doubled by each earlier lockout; the failures start again from nought. */
async function failed(trx: Kysely<TenantDatabase>, userId: string, policy: TenantPolicy, actor: AuditActor, metadata: Record<string, string>, counted: Counted | null): Promise<void> {
  await writeAudit(trx, actor, { action: 'auth.login_failed', entityType: 'users', entityId: userId, metadata });
  if (!counted || counted.failed_login_count < policy.lockout.maxFailures) return;
  const minutes = Math.min(policy.lockout.durationMinutes * 2 ** counted.lockout_count, policy.lockout.maxDurationMinutes);
  const until = new Date(Date.now() + minutes * 60_000);
  await trx.updateTable('users').set({ failed_login_count: 0, lockout_count: counted.lockout_count + 1, locked_until: until, updated_at: new Date() }).where('id', '=', userId).execute();
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
  /** Whether the proof holds, given the user's password hash (read with the lock check). */
  readonly check: (user: { readonly password_hash: string | null }) => Promise<boolean>;
}

/** The check of a password proof: `password` is the user's current one (never for a user without one). */
export const isPassword =
  (password: string): SessionProof['check'] =>
  async (user) =>
    user.password_hash !== null && (await verifyPassword(user.password_hash, password));

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
  const live = db.selectFrom('users').select(['password_hash', 'locked_until']).where('id', '=', userId).where('deleted_at', 'is', null);
  const counts = proof.counts !== false;
  const now = new Date();
  // Counted: the claim is the read. Not counted: a plain read, the lock checked here.
  const user = counts
    ? await db
        .updateTable('users')
        .set((eb) => ({ failed_login_count: eb('failed_login_count', '+', 1) }))
        .where('id', '=', userId)
        .where('deleted_at', 'is', null)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .where('failed_login_count', '<', policy.lockout.maxFailures)
        .returning(['failed_login_count', 'lockout_count', 'password_hash'])
        .executeTakeFirst()
    : await live.executeTakeFirst().then((u) => (u && !isLocked(u.locked_until) ? u : undefined));
  if (!user) {
    if (!(await live.executeTakeFirst())) throw DomainError.notFound('user');
    await recordFailure(db, userId, policy, actor, 'locked', false, proof.context);
    throw DomainError.invalid(proof.field, text('reason.account_locked'), proof.code);
  }
  if (await proof.check(user)) {
    if (counts) await db.updateTable('users').set({ failed_login_count: 0 }).where('id', '=', userId).execute();
    return;
  }
  if (counts) await db.transaction().execute((trx) => failed(trx, userId, policy, actor, { reason: proof.failure, context: proof.context }, user as Counted));
  throw DomainError.invalid(proof.field, proof.wrong, proof.code);
}
