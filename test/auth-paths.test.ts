import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { bearer, login, seedTenant, seedUser } from './support/tenants.js';

/**
 * A tenant request is decided either from cached state without a promise (the fast path) or by
 * loading what is missing (the loading path); both apply the same rules. Here one instance is
 * kept warm (its second request of a kind takes the fast path) and another answers each request
 * cold, from the database: after any sequence of changes made through the API, they agree.
 */
let warm: TestApp;
let cold: TestApp;
let adminToken: string;

beforeAll(async () => {
  warm = await createTestApp();
  cold = await createTestApp({ database: warm.db });
  await seedTenant(warm, 'pa');
  await seedTenant(warm, 'pb');
  adminToken = (await login(warm.app, 'pa', 'admin@pa.example')).access_token;
});
afterAll(async () => {
  await cold?.close();
  await warm?.close();
});

const ROUTES = ['pa/users', 'pa/audit-logs', 'pa/roles', 'pa/me', 'pb/users'] as const;
type Step =
  | { kind: 'request'; route: (typeof ROUTES)[number] }
  | { kind: 'roles'; roles: string[] }
  | { kind: 'override'; permission: string; effect: 'allow' | 'deny' | null }
  | { kind: 'status'; status: 'active' | 'suspended' }
  | { kind: 'logout' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('request' as const), route: fc.constantFrom(...ROUTES) }) },
  fc.record({ kind: fc.constant('roles' as const), roles: fc.subarray(['manager', 'user', 'viewer']) }),
  fc.record({ kind: fc.constant('override' as const), permission: fc.constantFrom('users.read', 'audit_logs.read', 'roles.read', '*'), effect: fc.constantFrom('allow' as const, 'deny' as const, null) }),
  fc.record({ kind: fc.constant('status' as const), status: fc.constantFrom('active' as const, 'suspended' as const) }),
  fc.constant({ kind: 'logout' as const }),
);

let n = 0;

describe('the fast path and the loading path', () => {
  it('agree after any sequence of role, override, status and session changes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('manager', 'user', 'viewer'), fc.array(step, { minLength: 3, maxLength: 10 }), async (role, steps) => {
        const user = await seedUser(warm, 'pa', { email: `path${++n}@pa.example`, roles: [role] });
        const { access_token: token } = await login(warm.app, 'pa', user.email);
        const admin = (method: 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
          warm.app.inject({ method, url: `/api/v1/tenants/pa/${url}`, headers: bearer(adminToken), ...(payload ? { payload } : {}) });
        for (const s of steps) {
          if (s.kind === 'request') {
            const url = `/api/v1/tenants/${s.route}`;
            const first = (await warm.app.inject({ method: 'GET', url, headers: bearer(token) })).statusCode;
            const second = (await warm.app.inject({ method: 'GET', url, headers: bearer(token) })).statusCode;
            await cold.services.local.invalidate(''); // everything: the cold instance loads it all
            const fresh = (await cold.app.inject({ method: 'GET', url, headers: bearer(token) })).statusCode;
            expect({ route: s.route, first, second }).toEqual({ route: s.route, first: fresh, second: fresh });
          } else if (s.kind === 'roles') await admin('PUT', `users/${user.id}/roles`, { roles: s.roles });
          else if (s.kind === 'override') await admin(s.effect ? 'PUT' : 'DELETE', `users/${user.id}/permissions/${s.permission}`, s.effect ? { effect: s.effect } : undefined);
          else if (s.kind === 'status') await admin('PATCH', `users/${user.id}`, { status: s.status });
          else await warm.app.inject({ method: 'POST', url: '/api/v1/tenants/pa/auth/logout', headers: bearer(token) });
        }
      }),
      { numRuns: 25 },
    );
  });
});
