import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { buildApp } from '../../src/app.js';
import type { JwtKeys } from '../../src/auth/keys.js';
import { issueSystemToken } from '../../src/auth/system-token.js';
import { databaseCheck } from '../../src/health/routes.js';
import { SchemaManager } from '../../src/tenancy/schema-manager.js';
import { TenantService } from '../../src/tenancy/service.js';
import { createTestDatabase, type TestDatabase } from './db.js';

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export function testKeys(secret = TEST_SECRET): JwtKeys {
  const key = new TextEncoder().encode(secret);
  return { algorithm: 'HS256', signingKey: key, verificationKey: key };
}

export interface TestApp {
  readonly app: FastifyInstance;
  readonly db: TestDatabase;
  readonly keys: JwtKeys;
  readonly tenants: TenantService;
  readonly schemas: SchemaManager;
  systemToken(): Promise<string>;
  close(): Promise<void>;
}

/** The real app on its own cloned database. */
export async function createTestApp(): Promise<TestApp> {
  const db = await createTestDatabase();
  const keys = testKeys();
  const schemas = new SchemaManager(db.database.db);
  const tenants = new TenantService(db.database.db, schemas);
  const app = await buildApp({ keys, tenants, readiness: { database: databaseCheck(db.database.db) }, logger: false });
  return {
    app,
    db,
    keys,
    tenants,
    schemas,
    systemToken: () => issueSystemToken(keys, { subject: 'test', ttlSeconds: 300 }),
    close: async () => {
      await app.close();
      await db.drop();
    },
  };
}

/** Signs arbitrary claims (and header) with the test secret, for token-rejection tests. */
export function signWith(claims: Record<string, unknown>, options: { secret?: string; alg?: string; exp?: number | null } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'HS256' }).setIssuedAt();
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}
