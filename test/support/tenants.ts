import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { hashPassword } from '../../src/auth/passwords.js';
import { tenantDb } from '../../src/db/database.js';
import type { TestApp } from './app.js';

export const PASSWORD = 'correct horse battery staple';

export interface SeededUser {
  readonly id: string;
  readonly email: string;
}

let cachedHash: Promise<string> | undefined;

/** Inserts a user with roles straight into a tenant schema (fixtures, not the API under test). */
export async function seedUser(t: TestApp, slug: string, input: { email: string; roles?: string[]; status?: string; username?: string; verified?: boolean }): Promise<SeededUser> {
  cachedHash ??= hashPassword(PASSWORD);
  const db = tenantDb(t.db.database.db, `tenant_${slug}`);
  const user = await db
    .insertInto('users')
    .values({ email: input.email, username: input.username ?? null, password_hash: await cachedHash, status: input.status ?? 'active', is_email_verified: input.verified ?? true })
    .returning('id')
    .executeTakeFirstOrThrow();
  for (const role of input.roles ?? []) {
    const r = await db.selectFrom('roles').select('id').where('name', '=', role).executeTakeFirstOrThrow();
    await db.insertInto('user_roles').values({ user_id: user.id, role_id: r.id }).execute();
  }
  return { id: user.id, email: input.email };
}

/** Creates a tenant through the platform API, with an admin whose password is PASSWORD. */
export async function seedTenant(t: TestApp, slug: string): Promise<SeededUser> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/tenants',
    headers: { authorization: `Bearer ${await t.systemToken()}` },
    payload: { slug, admin: { email: `admin@${slug}.example`, password: PASSWORD } },
  });
  if (res.statusCode !== 201) throw new Error(`tenant ${slug}: ${res.body}`);
  return { id: res.json().admin_user_id, email: `admin@${slug}.example` };
}

export interface Tokens {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly sid: string;
}

export async function login(app: FastifyInstance, slug: string, email: string, password = PASSWORD): Promise<Tokens> {
  const res = await app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/auth/login`, payload: { email, password } });
  if (res.statusCode !== 200) throw new Error(`login ${email}: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { access_token: body.access_token, refresh_token: body.refresh_token, sid: decodeJwt(body.access_token).sid as string };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
