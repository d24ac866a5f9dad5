import { sql, type Kysely } from 'kysely';
import type { TenantDatabase } from '../db/types.js';
import type { Rehearsal } from '../db/work.js';
import { effective } from './authority.js';
import { CONCRETE_PERMISSIONS } from './catalogue.js';
import { loadAccessData } from './guard.js';

/** One user a change moves: the effective permissions it gains and loses (catalogue order). */
export interface AffectedUser {
  readonly user_id: string;
  readonly email: string;
  readonly gained: string[];
  readonly lost: string[];
}

/** What a change would do to who holds what ("blast radius"), as a dry run answers it. */
export interface ChangePreview {
  readonly dry_run: true;
  /** Every user whose effective permissions the change moves. */
  readonly total_affected: number;
  /** The first PREVIEW_LIST_MAX of them, by email. */
  readonly affected: AffectedUser[];
}

/** How many affected users a preview lists; `total_affected` counts them all. */
export const PREVIEW_LIST_MAX = 1_000;

const CHUNK = 1_000;

/** A user's effective permissions as one string, a `1` per allowed permission of the catalogue. */
const maskOf = (allowed: ReadonlySet<string>) => CONCRETE_PERMISSIONS.map((p) => (allowed.has(p) ? '1' : '0')).join('');
const movedBetween = (before: string, after: string, bit: '0' | '1') => CONCRETE_PERMISSIONS.filter((_, i) => before[i] !== bit && after[i] === bit);

/** Thrown out of a dry run's transaction, which rolls it back; carries the preview out. */
class Rehearsed extends Error {
  constructor(
    readonly by: Preview,
    readonly preview: ChangePreview,
  ) {
    super('dry run: rolled back');
  }
}

/**
 * A dry run of a change. The service runs the change as it would for real, in its transaction
 * (db/work.ts `transact`): after its checks and lock it names the users it may move (`watch`),
 * whose effective permissions are read then; once the change has written, they are read again
 * in the same transaction, and the transaction is rolled back. Real and dry runs share every
 * rule and every write, so the preview is what the change does.
 */
export class Preview implements Rehearsal {
  /** Effective permissions are judged at one instant, before and after alike (an expiring override moves nothing). */
  private readonly now = new Date();
  private readonly before = new Map<string, string>();

  async watch(trx: Kysely<TenantDatabase>, userIds: readonly string[]): Promise<void> {
    const fresh = [...new Set(userIds)].filter((id) => !this.before.has(id));
    for (const [id, mask] of await this.masks(trx, fresh)) this.before.set(id, mask);
  }

  async finish(trx: Kysely<TenantDatabase>): Promise<never> {
    const moved = new Map<string, { gained: string[]; lost: string[] }>();
    const after = await this.masks(trx, [...this.before.keys()]);
    for (const [id, was] of this.before) {
      const will = after.get(id);
      if (will !== undefined && will !== was) moved.set(id, { gained: movedBetween(was, will, '1'), lost: movedBetween(was, will, '0') });
    }
    const listed = moved.size
      ? await trx
          .selectFrom('users')
          .select(['id', 'email'])
          .where('id', '=', sql<string>`any(${[...moved.keys()]}::uuid[])`)
          .orderBy(sql`lower(email)`)
          .orderBy('id')
          .limit(PREVIEW_LIST_MAX)
          .execute()
      : [];
    const affected = listed.map((u) => ({ user_id: u.id, email: u.email, ...moved.get(u.id)! }));
    throw new Rehearsed(this, { dry_run: true, total_affected: moved.size, affected });
  }

  /** The effective permissions of live (not deleted) users, as the explain route computes them. */
  private async masks(trx: Kysely<TenantDatabase>, userIds: readonly string[]): Promise<Map<string, string>> {
    const masks = new Map<string, string>();
    for (let i = 0; i < userIds.length; i += CHUNK) {
      const chunk = userIds.slice(i, i + CHUNK);
      const live = await trx.selectFrom('users').select('id').where('id', 'in', chunk).where('deleted_at', 'is', null).execute();
      for (const [id, data] of await loadAccessData(trx, live.map((u) => u.id))) masks.set(id, maskOf(effective(data, null, this.now)));
    }
    return masks;
  }
}

/**
 * Runs a change as a dry run: `change` calls the service with the preview, which the service
 * hands to its transaction; what the change would do comes back, and nothing is kept.
 */
export async function previewOf(change: (preview: Preview) => Promise<unknown>): Promise<ChangePreview> {
  const preview = new Preview();
  try {
    await change(preview);
  } catch (error) {
    if (error instanceof Rehearsed && error.by === preview) return error.preview;
    throw error;
  }
  throw new Error('a dry run ended without its preview');
}
