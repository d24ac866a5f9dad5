import { sql, type Expression, type ExpressionBuilder, type Kysely } from 'kysely';
import { Type, type Static } from 'typebox';
import { isoTimestamp, jsonRow } from '../db/json.js';
import type { TenantDatabase } from '../db/types.js';
import { DomainError } from '../errors.js';
import { DateTime } from '../http/schemas.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/** A user as the API shows it: never a password or a hash (the schema serializes nothing else). */
export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String(),
    username: Nullable(Type.String()),
    first_name: Nullable(Type.String()),
    last_name: Nullable(Type.String()),
    phone: Nullable(Type.String()),
    avatar_url: Nullable(Type.String()),
    locale: Nullable(Type.String()),
    timezone: Nullable(Type.String()),
    status: Type.String({ examples: ['active'] }),
    is_email_verified: Type.Boolean(),
    roles: Type.Array(Type.String()),
    last_login_at: Type.Union([DateTime, Type.Null()]),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'User' },
);

export type UserView = Static<typeof UserSchema>;

const Optional = (maxLength: number) => Type.Optional(Type.Union([Type.String({ maxLength }), Type.Null()]));

/** The profile fields a user may set on themselves, and an administrator on anyone (null clears). */
export const ProfileFields = {
  username: Optional(64),
  first_name: Optional(200),
  last_name: Optional(200),
  phone: Optional(50),
  avatar_url: Optional(2000),
  locale: Optional(35),
  timezone: Optional(64),
};

export const USER_COLUMNS = [
  'id',
  'email',
  'username',
  'first_name',
  'last_name',
  'phone',
  'avatar_url',
  'locale',
  'timezone',
  'status',
  'is_email_verified',
  'last_login_at',
  'created_at',
  'updated_at',
] as const;

/** A user's live role names, highest priority first (a scalar subquery on the user's id). */
function roleNames(db: Pick<Kysely<TenantDatabase>, 'selectFrom'>, userId: Expression<string>) {
  return db
    .selectFrom('user_roles as ur')
    .innerJoin('roles as r', 'r.id', 'ur.role_id')
    .select(sql<string[]>`coalesce(array_agg(r.name ORDER BY r.priority DESC, r.name), '{}')`.as('names'))
    .where('ur.user_id', '=', userId)
    .where('r.deleted_at', 'is', null);
}

/** The role names as a column of the user query itself. */
export function rolesColumn(eb: ExpressionBuilder<TenantDatabase, 'users'>) {
  return roleNames(eb as unknown as Kysely<TenantDatabase>, eb.ref('users.id')).as('roles');
}

const TIMESTAMPS: ReadonlySet<string> = new Set(['last_login_at', 'created_at', 'updated_at']);

/**
 * A user as UserSchema writes it, built by PostgreSQL from the USER_COLUMNS of `alias`, with
 * its role names looked up here (only for the rows rendered): same keys, order and text.
 */
export function userJson(db: Kysely<TenantDatabase>, alias: string) {
  return jsonRow(
    Object.keys(UserSchema.properties).map((key) => {
      const ref = sql.ref(`${alias}.${key}`);
      return [key, key === 'roles' ? sql`(${roleNames(db, sql.ref(`${alias}.id`))})` : TIMESTAMPS.has(key) ? isoTimestamp(ref) : ref] as const;
    }),
  );
}

/** One live user by id with its role names and row version: the single-user read of the API. */
export function userById(db: Kysely<TenantDatabase>, userId: string) {
  return db
    .selectFrom('users')
    .select([...USER_COLUMNS.map((c) => `users.${c}` as const), 'users.version'])
    .select((eb) => rolesColumn(eb))
    .where('users.id', '=', userId)
    .where('users.deleted_at', 'is', null);
}

/** One live user with role names, in one query, or 404. */
export async function loadUserView(db: Kysely<TenantDatabase>, userId: string): Promise<UserView> {
  const user = await db
    .selectFrom('users')
    .select(USER_COLUMNS.map((c) => `users.${c}` as const))
    .select((eb) => rolesColumn(eb))
    .where('users.id', '=', userId)
    .where('users.deleted_at', 'is', null)
    .executeTakeFirst();
  if (!user) throw DomainError.notFound('user');
  return { ...user, roles: user.roles ?? [] };
}
