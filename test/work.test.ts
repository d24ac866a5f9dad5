import { beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../src/cache/changes.js';
import { transact } from '../src/db/work.js';
import type { TenantContext } from '../src/tenancy/directory.js';
import { useTenants } from './support/fixture.js';

/** Cache invalidation has one door: what a unit of work records, reported after its commit only. Two tenants. */
const t = useTenants(['wa', 'wb'], { login: false });
const heard: { tenant: string; change: Change }[] = [];

beforeAll(() => {
  t.services.changes.listen({ forget: (tenant: TenantContext, change: Change) => void heard.push({ tenant: tenant.slug, change }) });
});

describe('units of work', () => {
  it('report their changes after the commit, to the tenant they ran in, and nothing when rolled back', async () => {
    const [a, b] = [await t.services.directory.resolve('wa'), await t.services.directory.resolve('wb')];
    heard.length = 0;
    await transact(t.db.database.db, t.services.changes, a, async ({ changed }) => {
      changed({ kind: 'settings' });
      expect(heard).toEqual([]);
    });
    expect(heard).toEqual([{ tenant: 'wa', change: { kind: 'settings' } }]);
    heard.length = 0;
    await expect(
      transact(t.db.database.db, t.services.changes, b, async ({ changed }) => {
        changed({ kind: 'roles' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(heard).toEqual([]);
  });

  it('are how a service write drops what it made stale: a setting change reaches the policy at once', async () => {
    const tenant = await t.services.directory.resolve('wb');
    expect((await t.services.policies.policy(tenant)).password.minLength).toBe(12);
    // A sign-in setting: changed by a user who holds everything (the tenant's admin).
    await t.services.settings.update(tenant, 'password.min_length', 20, undefined, { actorUserId: t.admins.wb.id, actorType: 'user', sessionId: null, ip: null, userAgent: null, requestId: null });
    expect((await t.services.policies.policy(tenant)).password.minLength).toBe(20);
    expect((await t.services.policies.policy(await t.services.directory.resolve('wa'))).password.minLength).toBe(12);
  });
});
