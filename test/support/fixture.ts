import { afterAll, beforeAll } from 'vitest';
import { createTestApp, type TestApp, type TestAppOptions } from './app.js';
import { login, seedTenant, type SeededUser } from './tenants.js';

/** Two tenants at least: isolation between tenants is the service's first promise, so every suite has a neighbour. */
export type TenantSlugs<S extends string> = readonly [S, S, ...S[]];

export interface TenantsOptions extends TestAppOptions {
  /** Log each tenant's admin in before the tests, for `tokens` (default true). */
  readonly login?: boolean;
}

/** The app of a suite and its tenants, filled in before its tests run. */
export interface Tenants<S extends string> extends TestApp {
  /** Each tenant's first admin: `admin@<slug>.example`, password PASSWORD. */
  readonly admins: Readonly<Record<S, SeededUser>>;
  /** An access token of each tenant's admin (a test that ends that session may put a new one here). */
  readonly tokens: Record<S, string>;
}

/**
 * The usual preamble of a suite: registers a `beforeAll` that builds the app (`createTestApp`
 * with `options`), creates the tenants through the platform API (in the order given) and logs
 * their admins in, and an `afterAll` that closes the app. Returns the suite's `t`, filled in by
 * then, which is also the TestApp:
 *
 *   const t = useTenants(['ua', 'ub']);
 *   it('...', () => t.app.inject({ url: '/api/v1/tenants/ua/me', headers: bearer(t.tokens.ua) }));
 *
 * A suite's own `beforeAll` hooks registered after this call run after it (and its `afterAll`
 * hooks before the app closes).
 */
export function useTenants<const S extends string>(slugs: TenantSlugs<S>, options: TenantsOptions & { login: false }): Omit<Tenants<S>, 'tokens'>;
export function useTenants<const S extends string>(slugs: TenantSlugs<S>, options?: TenantsOptions): Tenants<S>;
export function useTenants<const S extends string>(slugs: TenantSlugs<S>, options: TenantsOptions = {}): Tenants<S> {
  if (slugs.length < 2) throw new Error('useTenants: a suite has two tenants at least');
  const { login: logIn = true, ...appOptions } = options;
  const admins = {} as Record<S, SeededUser>;
  const tokens = {} as Record<S, string>;
  const fixture = { admins, tokens } as Tenants<S>;
  beforeAll(async () => {
    Object.assign(fixture, await createTestApp(appOptions));
    for (const slug of slugs) admins[slug] = await seedTenant(fixture, slug);
    if (logIn) for (const slug of slugs) tokens[slug] = (await login(fixture.app, slug, admins[slug].email)).access_token;
  });
  afterAll(async () => (fixture as Partial<TestApp>).close?.());
  return fixture;
}
