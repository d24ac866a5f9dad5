import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, matchingNames, withinScope, type AccessData, type Effect } from '../src/access/engine.js';
import { expand, missingForGrant } from '../src/access/grants.js';

const RESOURCES = ['users', 'notes', 'teams'];
const ACTIONS = ['read', 'create', 'update', 'delete'];
const NAMES = ['*', ...RESOURCES.flatMap((r) => [`${r}.*`, ...ACTIONS.map((a) => `${r}.${a}`)])];
const CONCRETE = RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}.${a}`));
const NOW = new Date('2026-06-01T00:00:00Z');

/**
 * The reference model: SPEC section 5 written as plainly as possible, independently of the
 * engine's code. For permission P = "res.act":
 *  1. live overrides whose name covers P: the most specific (exact, then res.*, then *) decides;
 *  2. grants of the user's roles covering P: the highest priority decides, deny wins ties;
 *  3. deny.
 */
function reference(data: AccessData, permission: string): boolean {
  const [resource] = permission.split('.');
  const specificity = (name: string) => (name === permission ? 3 : name === `${resource}.*` ? 2 : name === '*' ? 1 : 0);
  const live = data.overrides.filter((o) => specificity(o.permission) > 0 && (o.expiresAt === null || o.expiresAt > NOW));
  if (live.length > 0) {
    const top = Math.max(...live.map((o) => specificity(o.permission)));
    return live.find((o) => specificity(o.permission) === top)!.effect === 'allow';
  }
  const covering = data.grants.filter((g) => specificity(g.permission) > 0);
  if (covering.length === 0) return false;
  const highest = Math.max(...covering.map((g) => g.priority));
  return covering.filter((g) => g.priority === highest).every((g) => g.effect === 'allow');
}

const effect = fc.constantFrom<Effect>('allow', 'deny');
const accessData: fc.Arbitrary<AccessData> = fc
  .record({
    roles: fc.uniqueArray(fc.record({ name: fc.constantFrom('admin', 'manager', 'user', 'viewer', 'custom'), priority: fc.integer({ min: 0, max: 100 }) }), { selector: (r) => r.name, maxLength: 4 }),
    overrides: fc.uniqueArray(
      fc.record({
        permission: fc.constantFrom(...NAMES),
        effect,
        expiresAt: fc.option(fc.date({ min: new Date('2026-01-01'), max: new Date('2027-01-01'), noInvalidDate: true }), { nil: null }),
      }),
      { selector: (o) => o.permission, maxLength: 3 },
    ),
    picks: fc.array(fc.record({ role: fc.nat(), permission: fc.constantFrom(...NAMES), effect }), { maxLength: 12 }),
  })
  .map(({ roles, overrides, picks }) => ({
    roles,
    overrides,
    // Grants belong to the user's roles (with their priorities), one entry per role and name.
    grants: roles.length
      ? [...new Map(picks.map((p) => {
          const role = roles[p.role % roles.length]!;
          return [`${role.name}/${p.permission}`, { role: role.name, priority: role.priority, permission: p.permission, effect: p.effect }] as const;
        })).values()]
      : [],
  }));

describe('permission engine', () => {
  it('agrees with the reference model of SPEC section 5 on every permission', () => {
    fc.assert(
      fc.property(accessData, fc.constantFrom(...CONCRETE), (data, permission) => {
        expect(decide(data, permission, NOW).allowed).toBe(reference(data, permission));
      }),
      { numRuns: 3000 },
    );
  });

  it('denies by default', () => {
    expect(decide({ roles: [], grants: [], overrides: [] }, 'users.read')).toEqual({ allowed: false, reason: { source: 'default' } });
  });

  it('lets a user-level override decide over any role, until it expires', () => {
    const data: AccessData = {
      roles: [{ name: 'admin', priority: 100 }],
      grants: [{ role: 'admin', priority: 100, permission: '*', effect: 'allow' }],
      overrides: [{ permission: 'notes.delete', effect: 'deny', expiresAt: new Date('2026-07-01') }],
    };
    expect(decide(data, 'notes.delete', NOW)).toMatchObject({ allowed: false, reason: { source: 'override', effect: 'deny' } });
    expect(decide(data, 'notes.delete', new Date('2026-08-01'))).toMatchObject({ allowed: true, reason: { source: 'role', role: 'admin', permission: '*' } });
  });

  it('takes the highest priority role, and deny at equal priority', () => {
    const data: AccessData = {
      roles: [],
      grants: [
        { role: 'viewer', priority: 10, permission: 'notes.read', effect: 'deny' },
        { role: 'user', priority: 50, permission: 'notes.*', effect: 'allow' },
        { role: 'auditor', priority: 50, permission: 'notes.delete', effect: 'deny' },
      ],
      overrides: [],
    };
    expect(decide(data, 'notes.read')).toMatchObject({ allowed: true, reason: { role: 'user', priority: 50 } });
    expect(decide(data, 'notes.delete')).toMatchObject({ allowed: false, reason: { role: 'auditor', effect: 'deny' } });
  });

  it('matches wildcards from the most specific', () => {
    expect(matchingNames('notes.read')).toEqual(['notes.read', 'notes.*', '*']);
    expect(matchingNames('notes.*')).toEqual(['notes.*', '*']);
    expect(withinScope(['notes.*'], 'notes.update')).toBe(true);
    expect(withinScope(['notes.read'], 'notes.update')).toBe(false);
    expect(withinScope(['*'], 'users.delete')).toBe(true);
  });

  it('grants only what the actor holds (wildcards expanded)', () => {
    const manager: AccessData = {
      roles: [{ name: 'manager', priority: 75 }],
      grants: ['users.read', 'users.create', 'users.update', 'notes.read'].map((p) => ({ role: 'manager', priority: 75, permission: p, effect: 'allow' as const })),
      overrides: [],
    };
    expect(missingForGrant(manager, ['users.read', 'notes.read'])).toBeUndefined();
    expect(missingForGrant(manager, ['users.*'])).toBe('users.delete');
    expect(missingForGrant(manager, ['*'])).toBeDefined();
    expect(expand('notes.*')).toEqual(['notes.read', 'notes.create', 'notes.update', 'notes.delete']);
  });
});
