import type { Kysely } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import type { TenantDatabase } from '../db/types.js';
import { randomToken, sha256 } from './tokens.js';

/** The account pages the mailed links open (src/account/routes.ts serves them). */
export type AccountPage = 'reset-password' | 'verify-email' | 'accept-invitation';

/** A mailed one-time link: `PUBLIC_URL/<page>?tenant=<slug>&token=<token>`. */
export function accountLink(publicUrl: string, page: AccountPage, tenantSlug: string, token: string): string {
  return `${publicUrl.replace(/\/$/, '')}/${page}?tenant=${encodeURIComponent(tenantSlug)}&token=${encodeURIComponent(token)}`;
}

/** The table of a mailed link's tokens: reset links (and invitations), or verification links. */
export type LinkTokens = 'password_reset_tokens' | 'email_verification_tokens';

/**
 * Whether a mailed link's token is still usable (known, unused, unexpired, its user not deleted;
 * a verification link's address still the user's): the pages show a form only then, and using
 * it checks again.
 */
export async function linkTokenUsable(db: Kysely<TenantDatabase>, table: LinkTokens, token: string): Promise<boolean> {
  const now = new Date();
  const hash = sha256(token);
  const row =
    table === 'password_reset_tokens'
      ? await db.selectFrom('password_reset_tokens as k').innerJoin('users as u', 'u.id', 'k.user_id').select('k.id').where('k.token_hash', '=', hash).where('k.used_at', 'is', null).where('k.expires_at', '>', now).where('u.deleted_at', 'is', null).executeTakeFirst()
      : await db
          .selectFrom('email_verification_tokens as k')
          .innerJoin('users as u', 'u.id', 'k.user_id')
          .select('k.id')
          .where('k.token_hash', '=', hash)
          .where('k.used_at', 'is', null)
          .where('k.expires_at', '>', now)
          .where('u.deleted_at', 'is', null)
          .where((eb) => eb(eb.fn('lower', ['u.email']), '=', eb.fn('lower', ['k.email'])))
          .executeTakeFirst();
  return row !== undefined;
}

export interface VoidedTokens {
  readonly passwordReset: number;
  readonly emailVerification: number;
}

/**
 * Marks every outstanding password-reset and email-verification token of the user used: a link
 * mailed before an email change must not outlive it (it may sit in a mailbox the user no longer
 * controls). Call it inside the transaction that changes the email.
 */
export async function voidAccountTokens(trx: Kysely<TenantDatabase>, userId: string): Promise<VoidedTokens> {
  const now = new Date();
  const reset = await voidResetTokens(trx, userId);
  const verification = await trx.updateTable('email_verification_tokens').set({ used_at: now, updated_at: now }).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirst();
  return { passwordReset: reset, emailVerification: Number(verification.numUpdatedRows) };
}

/** Marks the user's outstanding password-reset tokens used (after a password change or reset); returns how many. */
export async function voidResetTokens(trx: Kysely<TenantDatabase>, userId: string): Promise<number> {
  const now = new Date();
  const result = await trx.updateTable('password_reset_tokens').set({ used_at: now, updated_at: now }).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * A new reset token for the account of `email` (lower-cased), with its audit row: undefined when
 * there is no such usable account, or when it was sent `maxPerHour` tokens in the last hour
 * (then an `auth.password_reset_limited` row). The account's row is locked, so concurrent
 * requests are counted one after the other.
 */
export async function issueResetToken(
  db: Kysely<TenantDatabase>,
  email: string,
  limits: { readonly ttlMinutes: number; readonly maxPerHour: number },
  actor: AuditActor,
): Promise<{ readonly email: string; readonly locale: string | null; readonly timezone: string | null; readonly token: string; readonly expiresAt: Date } | undefined> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('users')
      .select(['id', 'email', 'status', 'locale', 'timezone'])
      .where((eb) => eb(eb.fn('lower', ['email']), '=', email))
      .where('deleted_at', 'is', null)
      .forUpdate()
      .executeTakeFirst();
    if (!user || user.status === 'suspended') return undefined;
    const { recent } = await trx
      .selectFrom('password_reset_tokens')
      .select((eb) => eb.fn.countAll<string>().as('recent'))
      .where('user_id', '=', user.id)
      .where('created_at', '>', new Date(Date.now() - 3_600_000))
      .executeTakeFirstOrThrow();
    if (Number(recent) >= limits.maxPerHour) {
      await writeAudit(trx, actor, { action: 'auth.password_reset_limited', entityType: 'users', entityId: user.id, metadata: { per_hour: limits.maxPerHour } });
      return undefined;
    }
    const token = randomToken('');
    const expiresAt = new Date(Date.now() + limits.ttlMinutes * 60_000);
    await trx.insertInto('password_reset_tokens').values({ user_id: user.id, token_hash: sha256(token), expires_at: expiresAt, requested_ip: actor.ip }).execute();
    await writeAudit(trx, actor, { action: 'auth.password_reset_requested', entityType: 'users', entityId: user.id });
    return { email: user.email, locale: user.locale, timezone: user.timezone, token, expiresAt };
  });
}

/** A new verification token for the user's address `email`, with its audit row; returns the token. */
export async function issueVerificationToken(
  db: Kysely<TenantDatabase>,
  user: { readonly id: string; readonly email: string },
  ttlHours: number,
  actor: AuditActor,
  metadata: Record<string, unknown>,
): Promise<string> {
  const token = randomToken('');
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('email_verification_tokens').values({ user_id: user.id, email: user.email, token_hash: sha256(token), expires_at: new Date(Date.now() + ttlHours * 3_600_000) }).execute();
    await writeAudit(trx, actor, { action: 'auth.email_verification_requested', entityType: 'users', entityId: user.id, metadata });
  });
  return token;
}
