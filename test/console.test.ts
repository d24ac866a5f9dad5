/// <reference lib="dom" />
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { authenticator } from 'otplib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { createTestApp, type TestApp } from './support/app.js';
import { describeWithBrowser, freePort, launchBrowser, serve, seriousViolations } from './support/browser.js';
import { bearer, login, PASSWORD, seedTenant, seedUser } from './support/tenants.js';

// CONSOLE_SCREENSHOTS=docs/console writes the README's screenshots of the main pages.
const SHOTS = process.env.CONSOLE_SCREENSHOTS;

let t: TestApp;
let base: string;
let browser: Browser;
const pageErrors: string[] = [];

async function open(context?: BrowserContext): Promise<Page> {
  const page = await (context ?? (await browser.newContext())).newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // A Content-Security-Policy refusal is reported on the console.
  page.on('console', (m) => m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text()) && pageErrors.push(m.text()));
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function signIn(page: Page, slug: string, email: string): Promise<void> {
  await page.goto(`${base}/console`);
  await page.getByLabel('Tenant').fill(slug);
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect.poll(() => page.url()).toBe(`${base}/console/t/${slug}/users`);
  await page.getByRole('table', { name: 'Users' }).waitFor();
}

/** A software authenticator in the browser (Chromium's virtual one): it makes and uses real, discoverable credentials, the user verified. */
async function addAuthenticator(context: BrowserContext, page: Page): Promise<void> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
}

async function expectAccessible(page: Page, what: string): Promise<void> {
  const violations = await seriousViolations(page);
  expect(violations.map((v) => `${what}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

beforeAll(async () => {
  // PUBLIC_URL is where the browser finds the console: passkeys are made for its host and origin.
  const port = await freePort();
  t = await createTestApp({ publicUrl: `http://localhost:${port}` });
  await seedTenant(t, 'cona');
  await seedTenant(t, 'conb');
  await seedUser(t, 'conb', { email: 'grace@conb.example', roles: ['user'] });
  await seedUser(t, 'cona', { email: 'kim@cona.example', roles: ['user'] });
  base = await serve(t, port);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describeWithBrowser('the console in a real browser', { timeout: 120_000 }, () => {
  it('serves its page with a strict Content-Security-Policy, and every path under /console routes to it', async () => {
    for (const url of ['/console', '/console/t/cona/users?search=x', '/console/tenants']) {
      const res = await fetch(`${base}${url}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/html');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
    }
    expect((await fetch(`${base}/console/assets/nothing.js`)).status).toBe(404);
    const asset = await fetch(`${base}/console/assets/app.js`);
    expect(asset.headers.get('content-type')).toContain('text/javascript');
    expect((await fetch(`${base}/console/assets/app.js`, { headers: { 'if-none-match': asset.headers.get('etag')! } })).status).toBe(304);
  });

  it('keeps the refresh token in an HttpOnly, Secure, SameSite=Strict cookie scoped to its tenant, never in page scripts', async () => {
    const res = await fetch(`${base}/api/v1/tenants/cona/auth/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@cona.example', password: PASSWORD }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.access_token).toBeTruthy();
    expect(body).not.toHaveProperty('refresh_token');
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^ss_refresh=[^;]+; Path=\/api\/v1\/tenants\/cona\/auth\/session; HttpOnly; Secure; SameSite=Strict/);
    const jar = cookie.split(';')[0]!;
    // The cookie refreshes (and rotates) on its own tenant only.
    const refreshed = await fetch(`${base}/api/v1/tenants/cona/auth/session/refresh`, { method: 'POST', headers: { cookie: jar } });
    expect(refreshed.status).toBe(200);
    expect(((await refreshed.json()) as { access_token: string }).access_token).toBeTruthy();
    expect((await fetch(`${base}/api/v1/tenants/cona/auth/session/refresh`, { method: 'POST', headers: { cookie: jar } })).status).toBe(401);
    const foreign = await fetch(`${base}/api/v1/tenants/conb/auth/session/refresh`, { method: 'POST', headers: { cookie: (refreshed.headers.get('set-cookie') ?? '').split(';')[0]! } });
    expect(foreign.status).toBe(401);
    expect((await fetch(`${base}/api/v1/tenants/cona/auth/session/refresh`, { method: 'POST' })).status).toBe(401);
  });

  it('lets an administrator sign in, create a user, give a role after its preview, find the user, read the audit row, ask why, and sign out', async () => {
    const page = await open();
    await signIn(page, 'cona', 'admin@cona.example');
    expect(await page.evaluate(() => document.cookie)).toBe('');
    await expectAccessible(page, 'users page');

    await page.getByRole('button', { name: 'New user' }).click();
    const form = page.getByRole('form', { name: 'New user' });
    await form.getByLabel('Email').fill('ada@cona.example');
    await form.getByLabel('First name').fill('Ada');
    await form.getByLabel('Password').fill('A fine password 123!');
    await form.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('heading', { name: 'ada@cona.example' }).waitFor();
    const userUrl = page.url();
    const ada = userUrl.split('/').pop()!;

    // A refused input shows the problem's message, naming the field, and creates nothing.
    await page.goto(`${base}/console/t/cona/users`);
    await page.getByRole('button', { name: 'New user' }).click();
    await page.getByRole('form', { name: 'New user' }).getByLabel('Email').fill('ada@cona.example');
    await page.getByRole('form', { name: 'New user' }).getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toBeTruthy();

    // Roles: the preview first, which changes nothing; then the change.
    await page.goto(`${userUrl}?tab=access`);
    await page.getByRole('checkbox', { name: /^manager/ }).check();
    await page.getByRole('button', { name: 'Preview and save roles' }).click();
    const dialog = page.getByRole('dialog', { name: /Change the roles of ada@cona.example/ });
    await dialog.getByRole('table').waitFor();
    const row = dialog.getByRole('row', { name: /ada@cona.example/ });
    expect(await row.getByRole('cell').nth(1).textContent()).toContain('users.create');
    await shot(page, 'preview');
    const { access_token } = await login(t.app, 'cona', 'admin@cona.example');
    const rolesNow = async () => (await t.app.inject({ method: 'GET', url: `/api/v1/tenants/cona/users/${ada}`, headers: bearer(access_token) })).json().roles;
    expect(await rolesNow()).toEqual(['user']);
    await dialog.getByRole('button', { name: 'Apply the change' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await rolesNow()).sort()).toEqual(['manager', 'user']);

    // Why: the explain route's reasons.
    await page.getByLabel('Filter permissions').fill('users.create');
    const why = page.getByRole('table', { name: 'Decisions and their reasons' }).getByRole('row', { name: /users\.create/ });
    await expect.poll(() => why.textContent()).toContain('role manager');
    await expectAccessible(page, 'user access page');
    await shot(page, 'user');

    // Search: on the server, kept in the URL across a reload.
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByLabel('Search users').fill('ada');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.url()).toMatch(/search=ada/);
    await page.reload();
    await page.getByRole('link', { name: 'ada@cona.example' }).waitFor();
    expect(await page.getByRole('table', { name: 'Users' }).getByRole('row').count()).toBe(2);
    await shot(page, 'users');

    // The audit row of the role change.
    await page.getByRole('link', { name: 'Audit', exact: true }).click();
    await page.getByLabel('Action', { exact: true }).fill('users.update_roles');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.url()).toMatch(/action=users.update_roles/);
    const timeline = page.getByRole('list', { name: 'Audit records, newest first' });
    await expect.poll(() => timeline.textContent()).toContain(`users.update_roles`);
    expect(await timeline.textContent()).toContain(ada);
    await expectAccessible(page, 'audit page');
    await shot(page, 'audit');

    await page.getByRole('link', { name: 'Roles', exact: true }).click();
    await page.getByRole('table', { name: /Permission matrix/ }).waitFor();
    await expectAccessible(page, 'roles page');
    await shot(page, 'roles');

    // Sign out: the session ends, and a reload of a console page asks to sign in again.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.url()).toMatch(/\/console\/signin\?tenant=cona/);
    await page.goto(`${base}/console/t/cona/users`);
    await expect.poll(() => page.url()).toMatch(/\/console\/signin/);
    await expectAccessible(page, 'sign-in page');
    expect(pageErrors).toEqual([]);
  });

  it('leads back from a page past the last, opens a team just created, says "Saved." after a setting is saved, and changes a webhook after rotating its secret', async () => {
    const page = await open();
    await signIn(page, 'conb', 'admin@conb.example');
    // A page number past the last says so and leads back.
    await page.goto(`${base}/console/t/conb/users?page=99`);
    await page.getByText('Page 99 is past the last page').waitFor();
    await page.getByRole('button', { name: 'Go to the last page' }).click();
    await page.getByRole('link', { name: 'admin@conb.example' }).waitFor();
    expect(page.url()).not.toContain('page=99');
    await page.goto(`${base}/console/t/conb/teams`);
    await page.getByLabel('Team name').fill('Night shift');
    await page.getByRole('button', { name: 'Create team' }).click();
    await page.getByRole('heading', { name: 'Members of Night shift' }).waitFor();
    await page.getByRole('navigation', { name: 'Team tree' }).getByRole('link', { name: 'Night shift' }).waitFor();
    // A link to no team says so, and the tree stays usable.
    await page.goto(`${base}/console/t/conb/teams?team=00000000-0000-0000-0000-000000000000`);
    await page.getByRole('alert').filter({ hasText: 'no team with the id' }).waitFor();
    await page.getByRole('navigation', { name: 'Team tree' }).getByRole('link', { name: 'Night shift' }).click();
    await page.getByRole('heading', { name: 'Members of Night shift' }).waitFor();

    await page.goto(`${base}/console/t/conb/settings?category=lockout`);
    await page.getByLabel('lockout.max_failures', { exact: true }).fill('9');
    await page.getByRole('button', { name: 'Save lockout.max_failures' }).click();
    await page.getByRole('form', { name: 'Setting lockout.max_failures' }).getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const stored = await tenantDb(t.db.database.db, 'tenant_conb').selectFrom('settings').select('value').where('key', '=', 'lockout.max_failures').executeTakeFirstOrThrow();
    expect(stored.value).toBe(9);
    // Changed elsewhere after the page loaded: the next save is refused, not written over it.
    await tenantDb(t.db.database.db, 'tenant_conb').updateTable('settings').set({ value: JSON.stringify(7) }).where('key', '=', 'lockout.max_failures').execute();
    await page.getByLabel('lockout.max_failures', { exact: true }).fill('8');
    await page.getByRole('button', { name: 'Save lockout.max_failures' }).click();
    await page.getByRole('alert').filter({ hasText: 'changed since this page loaded' }).waitFor();
    expect((await tenantDb(t.db.database.db, 'tenant_conb').selectFrom('settings').select('value').where('key', '=', 'lockout.max_failures').executeTakeFirstOrThrow()).value).toBe(7);
    await tenantDb(t.db.database.db, 'tenant_conb').updateTable('settings').set({ value: JSON.stringify(10) }).where('key', '=', 'lockout.max_failures').execute();
    await t.services.changes.committed(await t.services.directory.resolve('conb'), [{ kind: 'settings' }]);

    const { access_token } = await login(t.app, 'conb', 'admin@conb.example');
    const hook = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/conb/webhooks', headers: bearer(access_token), payload: { url: 'http://localhost:9/hook', events: ['user.*'] } });
    expect(hook.statusCode, hook.body).toBe(201);
    await page.goto(`${base}/console/t/conb/webhooks/${hook.json().id}`);
    await page.getByRole('button', { name: 'Rotate the secret' }).click();
    await page.getByRole('status').filter({ hasText: 'New secret' }).waitFor();
    await page.getByRole('button', { name: 'Disable' }).click();
    await page.getByRole('button', { name: 'Enable' }).waitFor();
    expect(await page.getByRole('alert').count()).toBe(0);
    expect((await t.app.inject({ url: `/api/v1/tenants/conb/webhooks/${hook.json().id}`, headers: bearer(access_token) })).json().enabled).toBe(false);
    expect(pageErrors).toEqual([]);
  });

  it("keeps tenants apart: one tenant's session opens nothing of another's", async () => {
    const page = await open();
    await signIn(page, 'cona', 'admin@cona.example');
    await page.goto(`${base}/console/t/conb/users`);
    await expect.poll(() => page.url()).toMatch(/\/console\/signin\?tenant=conb/);
    // A token of cona sent to conb is refused by the API itself.
    const { access_token } = await login(t.app, 'cona', 'admin@cona.example');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/tenants/conb/users', headers: bearer(access_token) })).statusCode).toBe(403);
  });

  it('is usable with the keyboard alone: search the users and open one', async () => {
    const page = await open();
    await signIn(page, 'cona', 'admin@cona.example');
    const focused = () => page.evaluate(() => `${document.activeElement?.tagName}:${document.activeElement?.getAttribute('aria-label') ?? ''}:${(document.activeElement as HTMLElement | null)?.innerText?.trim() ?? ''}:${document.activeElement?.id}`);
    // On a fresh load, the first Tab reaches the skip link.
    await page.reload();
    await page.getByRole('table', { name: 'Users' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await focused()).toContain('Skip to content');
    const tabTo = async (match: (label: string) => boolean, most = 40) => {
      for (let i = 0; i < most; i++) {
        const label = await page.evaluate(() => {
          const el = document.activeElement as HTMLInputElement | null;
          return `${el?.labels?.[0]?.textContent?.trim() ?? ''}|${el?.innerText?.trim() ?? ''}`;
        });
        if (match(label)) return;
        await page.keyboard.press('Tab');
      }
      throw new Error(`focus never reached the control (${await focused()})`);
    };
    await tabTo((l) => l.startsWith('Search users|'));
    await page.keyboard.type('kim');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.url()).toMatch(/search=kim/);
    await page.getByRole('link', { name: 'kim@cona.example' }).waitFor();
    await tabTo((l) => l === '|kim@cona.example');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'kim@cona.example' }).waitFor();
    // Focus moved to the new page's content; the next stops are its tabs.
    await tabTo((l) => l === '|Roles and permissions');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.url()).toMatch(/tab=access$/);
    await tabTo((l) => l.startsWith('manager'));
    await page.keyboard.press('Space');
    expect(await page.getByRole('checkbox', { name: /^manager/ }).isChecked()).toBe(true);
  });

  it('lets an operator with a system token find, create and fork tenants', async () => {
    const page = await open();
    await page.goto(`${base}/console/tenants?search=con`);
    await expect.poll(() => page.url()).toMatch(/\/console\/signin\?mode=operator/);
    await page.getByLabel('System token').fill(await t.systemToken());
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect.poll(() => page.url()).toBe(`${base}/console/tenants?search=con`);
    const table = page.getByRole('table', { name: 'Tenants' });
    await table.getByRole('link', { name: 'cona' }).waitFor();
    await expectAccessible(page, 'tenants page');
    await page.getByRole('button', { name: 'New tenant' }).click();
    const form = page.getByRole('form', { name: 'New tenant' });
    await form.getByLabel('Slug').fill('conc');
    await form.getByLabel('Name').fill('Con C');
    await form.getByLabel("First admin's email").fill('admin@conc.example');
    await form.getByLabel("First admin's password").fill(PASSWORD);
    await form.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('heading', { name: 'Con C (conc)' }).waitFor();
    await shot(page, 'tenant');

    const fork = page.getByRole('form', { name: 'Fork' });
    await fork.getByLabel('New slug').fill('conc_copy');
    await fork.getByRole('button', { name: 'Fork tenant' }).click();
    await page.getByRole('heading', { name: /\(conc_copy\)/ }).waitFor();
    // The copy is a real tenant: its admin (copied) signs in.
    const copy = await login(t.app, 'conc_copy', 'admin@conc.example');
    expect(copy.access_token).toBeTruthy();

    // A bad slug: the problem's message, nothing created.
    await page.getByRole('link', { name: 'Tenants', exact: true }).click();
    await page.getByRole('button', { name: 'New tenant' }).click();
    await page.getByRole('form', { name: 'New tenant' }).getByLabel('Slug').fill('Bad Slug!');
    await page.getByRole('form', { name: 'New tenant' }).getByRole('button', { name: 'Create tenant' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('slug');

    await page.getByRole('link', { name: 'Migrations' }).click();
    await page.getByRole('table', { name: 'Tenant schemas' }).waitFor();
    expect(await page.getByRole('main').textContent()).toMatch(/\d+ done/);
    expect(pageErrors).toEqual([]);
  });

  it('asks a user with a second factor for a code, and walks a user of a tenant that requires one through enrolment', async () => {
    const post = (slug: string, url: string, payload: object, token?: string) =>
      t.app.inject({ method: 'POST', url: `/api/v1/tenants/${slug}/${url}`, payload, headers: token ? bearer(token) : {} });
    // Far enough from a 30-second step's end that a code read now is still good when it is sent.
    const code = async (secret: string) => {
      const left = 30_000 - (Date.now() % 30_000);
      if (left < 5_000) await new Promise((r) => setTimeout(r, left + 100));
      return authenticator.generate(secret);
    };
    await seedUser(t, 'cona', { email: 'otp@cona.example', roles: ['admin'] });
    const userToken = (await login(t.app, 'cona', 'otp@cona.example')).access_token;
    const { secret } = (await post('cona', 'me/mfa/totp', { password: PASSWORD }, userToken)).json() as { secret: string };
    expect((await post('cona', 'me/mfa/totp/confirm', { code: await code(secret) }, userToken)).statusCode).toBe(200);

    const page = await open();
    await page.goto(`${base}/console`);
    await page.getByLabel('Tenant').fill('cona');
    await page.getByLabel('Email or username').fill('otp@cona.example');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor();
    await page.getByLabel('Code').fill('000000' === (await code(secret)) ? '111111' : '000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('alert').waitFor();
    // The enrolment used this step's code (a replay now): the next step's, within the allowed drift.
    await code(secret);
    await page.getByLabel('Code').fill(authenticator.clone({ epoch: Date.now() + 30_000 }).generate(secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.url()).toBe(`${base}/console/t/cona/users`);
    await page.getByRole('table', { name: 'Users' }).waitFor();
    await expectAccessible(page, 'second step');

    // conb requires a second factor; grace has none yet.
    await tenantDb(t.db.database.db, 'tenant_conb').updateTable('settings').set({ value: JSON.stringify('required') }).where('key', '=', 'auth.mfa').execute();
    await t.services.changes.committed(await t.services.directory.resolve('conb'), [{ kind: 'settings' }]);
    const other = await open();
    await other.goto(`${base}/console`);
    await other.getByLabel('Tenant').fill('conb');
    await other.getByLabel('Email or username').fill('grace@conb.example');
    await other.getByLabel('Password').fill(PASSWORD);
    await other.getByRole('button', { name: 'Sign in', exact: true }).click();
    const key = (await other.getByLabel('Authenticator key').textContent())!.trim();
    expect(key).toMatch(/^[A-Z2-7]{16,}$/);
    await other.getByLabel('Code from the app').fill(await code(key));
    await other.getByRole('button', { name: 'Turn on and sign in' }).click();
    await other.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    const codes = await other.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allTextContents();
    expect(codes).toHaveLength(10);
    await expectAccessible(other, 'recovery codes');
    await other.getByRole('button', { name: 'Continue' }).click();
    await expect.poll(() => other.url()).toBe(`${base}/console/t/conb/users`);
    expect(pageErrors).toEqual([]);
    await tenantDb(t.db.database.db, 'tenant_conb').updateTable('settings').set({ value: JSON.stringify('optional') }).where('key', '=', 'auth.mfa').execute();
    await t.services.changes.committed(await t.services.directory.resolve('conb'), [{ kind: 'settings' }]);
  });

  it("adds a passkey on the user's own page, signs in with it, and removes it with the password", async () => {
    await seedUser(t, 'cona', { email: 'key@cona.example', roles: ['user'] });
    const context = await browser.newContext();
    const page = await open(context);
    await addAuthenticator(context, page);
    await signIn(page, 'cona', 'key@cona.example');
    await page.getByRole('link', { name: 'Your sign-in' }).click();
    await page.getByText('No passkey yet.').waitFor();
    await page.getByLabel('Passkey name').fill('Laptop');
    await page.getByLabel('Your password, to add a passkey').fill(PASSWORD);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByRole('cell', { name: 'Laptop', exact: true }).waitFor();
    expect(await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').count()).toBe(10);
    await expectAccessible(page, 'your sign-in');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email or username').fill('key@cona.example');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor();
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await expect.poll(() => page.url()).toBe(`${base}/console/t/cona/users`);

    // Passwordless: the tenant, then the passkey alone (the virtual authenticator verifies the user).
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect.poll(() => page.url()).toBe(`${base}/console/t/cona/users`);
    await page.getByRole('table', { name: 'Users' }).waitFor();

    await page.getByRole('link', { name: 'Your sign-in' }).click();
    await page.getByRole('button', { name: 'Remove Laptop' }).click();
    await page.getByLabel('Your password, to remove Laptop').fill('not the password');
    await page.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Your password, to remove Laptop').fill(PASSWORD);
    await page.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.getByText('No passkey yet.').waitFor();
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("signs in to an OpenID client on the provider's pages with a passkey: set up when the tenant requires a factor, as the second factor, and passwordless", async () => {
    await seedUser(t, 'conb', { email: 'oidc@conb.example', roles: ['user'] });
    const admin = (await login(t.app, 'conb', 'admin@conb.example')).access_token;
    const redirect = `${base}/sample-app/callback`;
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/conb/oidc/clients', headers: bearer(admin), payload: { name: 'Sample app', type: 'public', redirect_uris: [redirect] } });
    expect(created.statusCode, created.body).toBe(201);
    const clientId = created.json().client_id as string;
    const authorize = (extra: Record<string, string> = {}) =>
      `${base}/api/v1/tenants/conb/oidc/auth?${new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: redirect,
        code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
        code_challenge_method: 'S256',
        state: randomBytes(8).toString('hex'),
        ...extra,
      }).toString()}`;
    const backAtTheApp = (page: Page) => expect.poll(() => page.url()).toMatch(new RegExp(`^${redirect}\\?code=`));
    const setMfa = async (mode: string) => {
      await tenantDb(t.db.database.db, 'tenant_conb').updateTable('settings').set({ value: JSON.stringify(mode) }).where('key', '=', 'auth.mfa').execute();
      await t.services.changes.committed(await t.services.directory.resolve('conb'), [{ kind: 'settings' }]);
    };

    const context = await browser.newContext();
    const page = await open(context);
    await addAuthenticator(context, page);
    const signInWithPassword = async () => {
      await page.getByLabel('Email address').fill('oidc@conb.example');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    };
    await setMfa('required');
    try {
      // No factor yet: the pages set one up (a passkey here), show the recovery codes once, then go on.
      await page.goto(authorize());
      await signInWithPassword();
      await page.getByRole('heading', { name: 'Set up a second factor' }).waitFor();
      expect(await page.locator('#secret').textContent()).toMatch(/^[A-Z2-7]{16,}$/);
      await expectAccessible(page, 'provider enrolment');
      await page.getByRole('button', { name: 'Use a passkey instead' }).click();
      await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
      expect(await page.locator('ul.codes li').count()).toBe(10);
      await expectAccessible(page, 'provider recovery codes');
      await page.getByRole('link', { name: 'Continue to Sample app' }).click();
      await page.getByRole('button', { name: 'Allow' }).click();
      await backAtTheApp(page);

      // The next sign-in asks for the passkey as the second factor.
      await page.goto(authorize({ prompt: 'login' }));
      await signInWithPassword();
      await page.getByRole('heading', { name: 'A second factor is needed' }).waitFor();
      await page.getByRole('button', { name: 'Use a passkey' }).click();
      await backAtTheApp(page);

      // And the passkey alone signs in.
      await page.goto(authorize({ prompt: 'login' }));
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await backAtTheApp(page);
    } finally {
      await setMfa('optional');
    }
    const user = await tenantDb(t.db.database.db, 'tenant_conb').selectFrom('users').select('id').where('email', '=', 'oidc@conb.example').executeTakeFirstOrThrow();
    const logins = await tenantDb(t.db.database.db, 'tenant_conb').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.login').where('entity_id', '=', user.id).orderBy('created_at').execute();
    expect(logins.map((l) => l.metadata)).toEqual([
      expect.objectContaining({ mfa: 'webauthn', enrolled: true }),
      expect.objectContaining({ mfa: 'webauthn' }),
      expect.objectContaining({ mfa: 'webauthn', passwordless: true }),
    ]);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('renders the first page of 10,000 users and of 10,000 tenants soon after the API answers (reported)', async () => {
    await seedTenant(t, 'conbig');
    const users = tenantDb(t.db.database.db, 'tenant_conbig');
    await sql`INSERT INTO ${sql.table('tenant_conbig.users')} (email, first_name, password_hash, status, is_email_verified)
      SELECT 'user' || i || '@conbig.example', 'User ' || i, 'not-a-hash', 'active', true FROM generate_series(1, 10000) AS i`.execute(users);
    await sql`INSERT INTO shared.tenants (slug, name, schema_name, status) SELECT 'bulk_' || i, 'Bulk ' || i, 'tenant_bulk_' || i, 'active' FROM generate_series(1, 10000) AS i`.execute(t.db.database.db);

    const page = await open();
    await signIn(page, 'conbig', 'admin@conbig.example');
    expect(await page.getByRole('navigation', { name: 'User pages' }).textContent()).toContain('10001 in all');
    // Measured in the frame after the page rendered: wait for the measure.
    const rendered = (name: string) => page.evaluate((n) => performance.getEntriesByName(n).at(-1)?.duration ?? -1, name);
    await expect.poll(() => rendered('console:users')).toBeGreaterThan(0);
    const usersMs = await rendered('console:users');

    await page.goto(`${base}/console/signin?mode=operator&next=${encodeURIComponent('/console/tenants')}`);
    await page.getByLabel('System token').fill(await t.systemToken());
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('table', { name: 'Tenants' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Tenant pages' }).textContent()).toMatch(/\(100\d\d in all\)/);
    await expect.poll(() => rendered('console:tenants')).toBeGreaterThan(0);
    const tenantsMs = await rendered('console:tenants');
    await page.getByLabel('Search tenants').fill('bulk_9999');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'bulk_9999' }).waitFor();

    console.log(`console first page after the API answered: users (10,000) ${usersMs.toFixed(1)} ms, tenants (10,000) ${tenantsMs.toFixed(1)} ms`);
    expect(usersMs).toBeGreaterThan(0);
    expect(tenantsMs).toBeGreaterThan(0);
  });
});
