import { sql, type Kysely, type Transaction } from 'kysely';
import { writeAudit, type AuditActor } from '../audit/audit.js';
import { tenantDb } from '../db/database.js';
import { once, type IdempotencyKey } from '../db/idempotency.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantDatabase } from '../db/types.js';
import { LOCK_CLASS } from '../db/platform.js';
import { checkVersion, conflictOnUnique, DomainError, text } from '../errors.js';
import { likePattern, parseSort } from '../db/listing.js';
import type { TenantContext } from '../tenancy/directory.js';

const COLUMNS = ['id', 'name', 'description', 'parent_team_id', 'created_at', 'updated_at', 'version'] as const;
export const TEAM_SORTS = ['name', 'created_at', 'updated_at'] as const;
export const MEMBER_ROLES = ['member', 'lead'] as const;

export interface TeamInput {
  name?: string;
  description?: string | null;
  parent_team_id?: string | null;
}

const uniqueTeam = <T>(work: () => Promise<T>) => conflictOnUnique(work, DomainError.conflict('team.name_taken'));

/** Teams, nested through parent_team_id (no cycles), and their members (member or lead). */
export class TeamService {
  constructor(private readonly db: Kysely<PlatformDatabase>) {}

  async list(tenant: TenantContext, query: { page: number; page_size: number; search?: string; sort?: string; parent_team_id?: string }) {
    const db = tenantDb(this.db, tenant.schema);
    let base = db.selectFrom('teams').where('deleted_at', 'is', null);
    if (query.search) base = base.where('name', 'ilike', likePattern(query.search));
    if (query.parent_team_id) base = base.where('parent_team_id', '=', query.parent_team_id);
    const sort = parseSort(query.sort, { column: 'name', direction: 'asc' });
    const [items, total] = await Promise.all([
      base.select(COLUMNS).orderBy(sql.ref(sort.column), sort.direction).orderBy('id').limit(query.page_size).offset((query.page - 1) * query.page_size).execute(),
      base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(total.n), page: query.page, page_size: query.page_size };
  }

  get(tenant: TenantContext, id: string) {
    return this.one(tenantDb(this.db, tenant.schema), id);
  }

  /** The live teams of each of `userIds`, by name: one statement for a whole page of users. */
  async ofUsers(tenant: TenantContext, userIds: readonly string[]) {
    const byUser = new Map<string, Awaited<ReturnType<TeamService['get']>>[]>(userIds.map((id) => [id, []]));
    if (userIds.length === 0) return byUser;
    const rows = await tenantDb(this.db, tenant.schema)
      .selectFrom('team_members as tm')
      .innerJoin('teams', 'teams.id', 'tm.team_id')
      .select(['tm.user_id as member_id', ...COLUMNS.map((c) => `teams.${c}` as const)])
      .where('tm.user_id', 'in', [...new Set(userIds)])
      .where('teams.deleted_at', 'is', null)
      .orderBy('teams.name')
      .execute();
    for (const { member_id, ...team } of rows) byUser.get(member_id)?.push(team as never);
    return byUser;
  }

  /** Creates a team; honours an idempotency key. */
  async create(tenant: TenantContext, input: TeamInput & { name: string }, actor: AuditActor, idempotency?: IdempotencyKey) {
    return once(tenantDb(this.db, tenant.schema), idempotency, async (trx) => ({ status: 201, body: await this.insert(trx, tenant, input, actor) }));
  }

  private async insert(trx: Transaction<TenantDatabase>, tenant: TenantContext, input: TeamInput & { name: string }, actor: AuditActor) {
    await lockHierarchy(trx, tenant);
    if (input.parent_team_id) await this.parent(trx, input.parent_team_id);
    const team = await uniqueTeam(() =>
      trx
        .insertInto('teams')
        .values({ name: checkName(input.name), description: input.description?.trim() || null, parent_team_id: input.parent_team_id ?? null })
        .returning(COLUMNS)
        .executeTakeFirstOrThrow(),
    );
    await writeAudit(trx, actor, { action: 'teams.create', entityType: 'teams', entityId: team.id, after: team });
    return team;
  }

  async update(tenant: TenantContext, id: string, input: TeamInput, expected: number | undefined, actor: AuditActor) {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await lockHierarchy(trx, tenant);
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        if (input.parent_team_id) {
          await this.parent(trx, input.parent_team_id);
          if (await isDescendantOrSelf(trx, tenant, input.parent_team_id, id)) throw DomainError.conflict('team.cycle');
        }
        const after = await uniqueTeam(() =>
          trx
            .updateTable('teams')
            .set({
              ...(input.name !== undefined ? { name: checkName(input.name) } : {}),
              ...(input.description !== undefined ? { description: input.description?.trim() || null } : {}),
              ...(input.parent_team_id !== undefined ? { parent_team_id: input.parent_team_id } : {}),
              updated_at: new Date(),
              version: sql`version + 1`,
            })
            .where('id', '=', id)
            .returning(COLUMNS)
            .executeTakeFirstOrThrow(),
        );
        await writeAudit(trx, actor, { action: 'teams.update', entityType: 'teams', entityId: id, before, after });
        return after;
      });
  }

  async remove(tenant: TenantContext, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await lockHierarchy(trx, tenant);
        const before = await this.one(trx, id, true);
        checkVersion(expected, before.version);
        const child = await trx.selectFrom('teams').select('id').where('parent_team_id', '=', id).where('deleted_at', 'is', null).limit(1).executeTakeFirst();
        if (child) throw DomainError.conflict('team.has_children');
        await trx.updateTable('teams').set({ deleted_at: new Date(), updated_at: new Date(), version: sql`version + 1` }).where('id', '=', id).execute();
        await writeAudit(trx, actor, { action: 'teams.delete', entityType: 'teams', entityId: id, before });
      });
  }

  async members(tenant: TenantContext, teamId: string) {
    const db = tenantDb(this.db, tenant.schema);
    await this.one(db, teamId);
    return db
      .selectFrom('team_members as tm')
      .innerJoin('users as u', 'u.id', 'tm.user_id')
      .select(['tm.user_id', 'u.email', 'u.first_name', 'u.last_name', 'tm.role', 'tm.created_at as added_at'])
      .where('tm.team_id', '=', teamId)
      .where('u.deleted_at', 'is', null)
      .orderBy('u.email')
      .execute();
  }

  async setMember(tenant: TenantContext, teamId: string, userId: string, role: (typeof MEMBER_ROLES)[number], actor: AuditActor) {
    return tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await this.one(trx, teamId);
        const user = await trx.selectFrom('users').select('id').where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst();
        if (!user) throw DomainError.notFound('user');
        const before = await trx.selectFrom('team_members').select('role').where('team_id', '=', teamId).where('user_id', '=', userId).executeTakeFirst();
        await trx
          .insertInto('team_members')
          .values({ team_id: teamId, user_id: userId, role })
          .onConflict((oc) => oc.columns(['team_id', 'user_id']).doUpdateSet({ role, updated_at: new Date() }))
          .execute();
        await writeAudit(trx, actor, { action: 'teams.set_member', entityType: 'teams', entityId: teamId, before: before ? { user_id: userId, ...before } : null, after: { user_id: userId, role } });
        return { team_id: teamId, user_id: userId, role, created: !before };
      });
  }

  async removeMember(tenant: TenantContext, teamId: string, userId: string, actor: AuditActor): Promise<void> {
    await tenantDb(this.db, tenant.schema)
      .transaction()
      .execute(async (trx) => {
        await this.one(trx, teamId);
        const removed = await trx.deleteFrom('team_members').where('team_id', '=', teamId).where('user_id', '=', userId).returning('role').executeTakeFirst();
        if (!removed) throw DomainError.notFound('team_member');
        await writeAudit(trx, actor, { action: 'teams.remove_member', entityType: 'teams', entityId: teamId, before: { user_id: userId, role: removed.role } });
      });
  }

  private async parent(db: Kysely<TenantDatabase>, parentId: string): Promise<void> {
    const parent = await db.selectFrom('teams').select('id').where('id', '=', parentId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!parent) throw DomainError.invalid('parent_team_id', text('reason.not_team'));
  }

  private async one(db: Kysely<TenantDatabase>, id: string, forUpdate = false) {
    let q = db.selectFrom('teams').select(COLUMNS).where('id', '=', id).where('deleted_at', 'is', null);
    if (forUpdate) q = q.forUpdate();
    const team = await q.executeTakeFirst();
    if (!team) throw DomainError.notFound('team');
    return team;
  }
}

function checkName(input: string): string {
  const name = input.trim();
  if (name.length < 1 || name.length > 200) throw DomainError.invalid('name', text('reason.length_between', { min: 1, max: 200 }));
  return name;
}

/** Whether `candidate` is `teamId` or one of its sub-teams (walking up from candidate). */
async function isDescendantOrSelf(db: Kysely<TenantDatabase>, tenant: TenantContext, candidate: string, teamId: string): Promise<boolean> {
  const teams = sql.id(tenant.schema, 'teams');
  const result = await sql<{ found: boolean }>`
    WITH RECURSIVE up(id, parent_team_id, depth) AS (
      SELECT id, parent_team_id, 0 FROM ${teams} WHERE id = ${candidate}
      UNION ALL
      SELECT t.id, t.parent_team_id, up.depth + 1 FROM ${teams} t JOIN up ON t.id = up.parent_team_id WHERE up.depth < 1000
    )
    SELECT EXISTS (SELECT 1 FROM up WHERE id = ${teamId}) AS found`.execute(db);
  return result.rows[0]?.found ?? false;
}

/** Hierarchy changes of one tenant run one at a time, so two moves cannot make a cycle together. */
async function lockHierarchy(trx: Kysely<TenantDatabase>, tenant: TenantContext): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS.teamHierarchy}, hashtext(${tenant.schema}))`.execute(trx);
}
