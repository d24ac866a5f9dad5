import type { Kysely } from 'kysely';
import { randomToken, sha256 } from '../../auth/tokens.js';
import { tenantDb } from '../../db/database.js';
import type { PlatformDatabase } from '../../db/platform-types.js';
import { DomainError, text } from '../../errors.js';
import type { Principal } from '../../auth/principal.js';
import type { TenantContext } from '../../tenancy/directory.js';

export const TICKET_TTL_SECONDS = 60;
const TICKET = /^rtt_[A-Za-z0-9_-]{43}$/;

/**
 * Tickets that open a realtime socket where no header can be set (browsers): issued to a
 * user session, stored hashed in the tenant's schema (every instance can redeem them), used
 * once, valid for a minute.
 */
export class RealtimeTickets {
  constructor(private readonly db: Kysely<PlatformDatabase>) {}

  async issue(tenant: TenantContext, principal: Principal): Promise<{ ticket: string; expires_in: number }> {
    if (!principal.sessionId) throw new DomainError('auth.session_required', text('detail.ticket_needs_session'));
    const ticket = randomToken('rtt_');
    const db = tenantDb(this.db, tenant.schema);
    await db.deleteFrom('realtime_tickets').where('expires_at', '<', new Date()).execute();
    await db
      .insertInto('realtime_tickets')
      .values({ ticket_hash: sha256(ticket), user_id: principal.userId, session_id: principal.sessionId, expires_at: new Date(Date.now() + TICKET_TTL_SECONDS * 1000) })
      .execute();
    return { ticket, expires_in: TICKET_TTL_SECONDS };
  }

  /** The session a ticket stands for, the ticket used up; 401 for anything else. */
  async redeem(tenant: TenantContext, ticket: string): Promise<Principal> {
    const invalid = new DomainError('auth.invalid_ticket');
    if (!TICKET.test(ticket)) throw invalid;
    const row = await tenantDb(this.db, tenant.schema)
      .deleteFrom('realtime_tickets')
      .where('ticket_hash', '=', sha256(ticket))
      .returning(['user_id', 'session_id', 'expires_at'])
      .executeTakeFirst();
    if (!row || row.expires_at.getTime() <= Date.now()) throw invalid;
    return { kind: 'user', userId: row.user_id, sessionId: row.session_id, apiKeyId: null, scope: null };
  }
}
