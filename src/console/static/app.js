// The console's shell: sign-in, the tenant and operator layouts, and the routes (URL → page).
import { render, useEffect, useState } from './preact.js';
import { confirmEnrolment, currentSession, enrolWithPasskey, operatorSignIn, resume, signIn, signInWithPasskey, signOut, startEnrolment, verifySecondFactor, verifyWithPasskey } from './api.js';
import { Field, html, Link, navigate, ProblemView, useAction, useLocation } from './ui.js';
import { UserPage, UsersPage } from './users.js';
import { RolePage, RolesPage } from './roles.js';
import { TeamsPage } from './teams.js';
import { SettingsPage } from './settings.js';
import { AuditPage } from './audit.js';
import { WebhookPage, WebhooksPage } from './webhooks.js';
import { RecordsPage } from './records.js';
import { MigrationsPage, TenantPage, TenantsPage } from './tenants.js';
import { passkeyAssertion, passkeyCreation, passkeysSupported, SecurityPage } from './security.js';

const tenantSections = [
  ['users', 'Users'],
  ['roles', 'Roles'],
  ['teams', 'Teams'],
  ['settings', 'Settings'],
  ['audit', 'Audit'],
  ['webhooks', 'Webhooks'],
  ['records', 'Records'],
  ['security', 'Your sign-in'],
];

function SignIn() {
  const { query } = useLocation();
  const operator = query.get('mode') === 'operator';
  const next = query.get('next');
  const [slug, setSlug] = useState(query.get('tenant') ?? '');
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  // The second step a tenant asks for: { kind: 'mfa' | 'enrol', tenant, token, secret?, otpauth? }.
  const [step, setStep] = useState(null);
  const action = useAction();
  const safeNext = (fallback) => (next && next.startsWith('/console/') ? next : fallback);
  const enter = (tenant) => navigate(safeNext(`/console/t/${encodeURIComponent(tenant)}/users`), { replace: true });
  const submit = (event) => {
    event.preventDefault();
    action.run(async () => {
      if (operator) {
        await operatorSignIn(token);
        navigate(safeNext('/console/tenants'), { replace: true });
      } else {
        const tenant = slug.trim().toLowerCase();
        const answer = await signIn(tenant, login.trim(), password);
        if (answer.step === 'enrol') {
          const secret = await startEnrolment(tenant, answer.token);
          setStep({ kind: 'enrol', tenant, token: answer.token, secret: secret.secret, otpauth: secret.otpauth_url });
        } else if (answer.step === 'mfa') setStep({ kind: 'mfa', tenant, token: answer.token, methods: answer.methods ?? [] });
        else enter(tenant);
      }
    });
  };
  // Passwordless: the tenant's passkeys for this site, the user verified by the device.
  const withPasskey = () =>
    action.run(async () => {
      const tenant = slug.trim().toLowerCase();
      if (!tenant) throw new Error('Enter the tenant first.');
      await signInWithPasskey(tenant, passkeyAssertion);
      enter(tenant);
    });
  if (step) return html`<${SecondStep} step=${step} enter=${enter} restart=${() => setStep(null)} />`;
  return html`<main class="signin" id="main">
    <h1>system-service console</h1>
    <nav aria-label="Who signs in" class="tabs">
      <${Link} href="/console/signin${slug ? `?tenant=${encodeURIComponent(slug)}` : ''}" aria-current=${operator ? undefined : 'page'}>Tenant administrator<//>
      <${Link} href="/console/signin?mode=operator" aria-current=${operator ? 'page' : undefined}>Platform operator<//>
    </nav>
    <form onSubmit=${submit}>
      <h2>${operator ? 'Sign in with a system token' : 'Sign in to a tenant'}</h2>
      ${operator
        ? html`<${Field} label="System token" as="textarea" required rows="4" value=${token} onInput=${(e) => setToken(e.currentTarget.value)} hint="Print one with: npm run cli -- token system" />`
        : html`<${Field} label="Tenant" required autocomplete="organization" value=${slug} onInput=${(e) => setSlug(e.currentTarget.value)} />
            <${Field} label="Email or username" required autocomplete="username" value=${login} onInput=${(e) => setLogin(e.currentTarget.value)} />
            <${Field} label="Password" type="password" required autocomplete="current-password" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />`}
      <${ProblemView} error=${action.error} />
      <button type="submit" class="primary" disabled=${action.busy}>Sign in</button>
      ${!operator && passkeysSupported() && html`<button type="button" disabled=${action.busy} onClick=${withPasskey}>Sign in with a passkey</button>`}
    </form>
  </main>`;
}

/** A sign-in's second step: a code (TOTP or recovery), or a forced TOTP enrolment, then its recovery codes. */
function SecondStep({ step, enter, restart }) {
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState(null);
  const action = useAction();
  const enrol = step.kind === 'enrol';
  const submit = (event) => {
    event.preventDefault();
    action.run(async () => {
      if (!enrol) {
        await verifySecondFactor(step.tenant, step.token, code.trim());
        return enter(step.tenant);
      }
      setCodes(await confirmEnrolment(step.tenant, step.token, code.trim()));
    });
  };
  // A passkey: the second factor of a user who has one, or the factor a forced enrolment sets up.
  const withPasskey = (enrol || step.methods?.includes('webauthn')) && passkeysSupported();
  const usePasskey = () =>
    action.run(async () => {
      if (enrol) return setCodes(await enrolWithPasskey(step.tenant, step.token, passkeyCreation));
      await verifyWithPasskey(step.tenant, step.token, passkeyAssertion);
      enter(step.tenant);
    });
  if (codes)
    return html`<main class="signin" id="main">
      <h1>system-service console</h1>
      <section aria-labelledby="codes-title">
        <h2 id="codes-title">Your recovery codes</h2>
        <p>Each one signs you in once instead of a code from your app. Keep them somewhere safe: they are shown only now.</p>
        <ul class="codes" aria-label="Recovery codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
        <button type="button" class="primary" onClick=${() => enter(step.tenant)}>Continue</button>
      </section>
    </main>`;
  return html`<main class="signin" id="main">
    <h1>system-service console</h1>
    <form onSubmit=${submit}>
      <h2>${enrol ? 'Set up two-step sign-in' : 'Two-step sign-in'}</h2>
      ${enrol
        ? html`<p>This tenant requires a second factor. Add this key to an authenticator app, then enter the code it shows.</p>
            <p>Key: <code class="secret" aria-label="Authenticator key">${step.secret}</code></p>
            <p><a href=${step.otpauth}>Open in an authenticator app</a></p>`
        : html`<p>Enter the code from your authenticator app, or one of your recovery codes.</p>`}
      <${Field} label=${enrol ? 'Code from the app' : 'Code'} required autocomplete="one-time-code" value=${code} onInput=${(e) => setCode(e.currentTarget.value)} />
      <${ProblemView} error=${action.error} />
      <button type="submit" class="primary" disabled=${action.busy}>${enrol ? 'Turn on and sign in' : 'Verify'}</button>
      ${withPasskey && html`<button type="button" disabled=${action.busy} onClick=${usePasskey}>${enrol ? 'Use a passkey instead' : 'Use a passkey'}</button>`}
      <button type="button" onClick=${restart}>Back</button>
    </form>
  </main>`;
}

function Shell({ title, nav, children }) {
  const session = currentSession();
  const out = async () => {
    const slug = session?.kind === 'tenant' ? session.slug : null;
    await signOut();
    navigate(slug ? `/console/signin?tenant=${encodeURIComponent(slug)}` : '/console/signin?mode=operator');
  };
  const who = session?.kind === 'tenant' ? `${session.user?.email ?? ''} · ${session.slug}` : 'platform operator';
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to content</a>
    <header>
      <span class="brand">${title}</span>
      <nav aria-label="Sections"><ul>${nav}</ul></nav>
      <span class="who">${who}</span>
      <button type="button" onClick=${out}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${children}</main>
  </div>`;
}

function NavLink({ href, label, active }) {
  return html`<li><${Link} href=${href} aria-current=${active ? 'page' : undefined}>${label}<//></li>`;
}

/** Waits for a session (from memory or the cookie) before showing a protected page. */
function useSession(kind, slug) {
  const [ready, setReady] = useState(() => {
    const s = currentSession();
    return s?.kind === kind && (kind === 'operator' || s.slug === slug);
  });
  useEffect(() => {
    if (ready) return;
    const next = encodeURIComponent(location.pathname + location.search);
    if (kind === 'operator') {
      navigate(`/console/signin?mode=operator&next=${next}`, { replace: true });
      return;
    }
    resume(slug).then((ok) => (ok ? setReady(true) : navigate(`/console/signin?tenant=${encodeURIComponent(slug)}&next=${next}`, { replace: true })));
  }, [ready, kind, slug]);
  return ready;
}

function TenantConsole({ slug, rest }) {
  const ready = useSession('tenant', slug);
  if (!ready) return html`<p aria-busy="true">Signing in…</p>`;
  const [section = 'users', id, sub] = rest;
  const base = `/console/t/${encodeURIComponent(slug)}`;
  const nav = tenantSections.map(([key, label]) => html`<${NavLink} href="${base}/${key}" label=${label} active=${section === key} />`);
  const pages = {
    users: () => (id ? html`<${UserPage} id=${id} base=${base} />` : html`<${UsersPage} base=${base} />`),
    roles: () => (id ? html`<${RolePage} id=${id} base=${base} />` : html`<${RolesPage} base=${base} />`),
    teams: () => html`<${TeamsPage} base=${base} />`,
    settings: () => html`<${SettingsPage} />`,
    audit: () => html`<${AuditPage} />`,
    webhooks: () => (id ? html`<${WebhookPage} id=${id} base=${base} />` : html`<${WebhooksPage} base=${base} />`),
    records: () => html`<${RecordsPage} base=${base} type=${id} sub=${sub} />`,
    security: () => html`<${SecurityPage} />`,
  };
  const page = pages[section] ?? (() => html`<h1>Not found</h1>`);
  return html`<${Shell} title=${`Tenant ${slug}`} nav=${nav}>${page()}<//>`;
}

function OperatorConsole({ rest }) {
  const ready = useSession('operator');
  if (!ready) return html`<p aria-busy="true">Signing in…</p>`;
  const [section = 'tenants', id] = rest;
  const nav = [html`<${NavLink} href="/console/tenants" label="Tenants" active=${section === 'tenants'} />`, html`<${NavLink} href="/console/migrations" label="Migrations" active=${section === 'migrations'} />`];
  const page = section === 'migrations' ? html`<${MigrationsPage} />` : id ? html`<${TenantPage} id=${id} />` : html`<${TenantsPage} />`;
  return html`<${Shell} title="Platform" nav=${nav}>${page}<//>`;
}

let firstPath = location.pathname;

function App() {
  const { path } = useLocation();
  const parts = path.replace(/^\/console\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  useEffect(() => {
    // After a navigation inside the console, focus moves to the new page's content.
    if (path !== firstPath) document.getElementById('main')?.focus({ preventScroll: true });
    firstPath = null;
    const h1 = document.querySelector('main h1');
    document.title = `${h1?.textContent ?? 'Console'} · system-service`;
  }, [path]);
  if (parts[0] === 't' && parts[1]) return html`<${TenantConsole} key=${parts[1]} slug=${parts[1]} rest=${parts.slice(2)} />`;
  if (parts[0] === 'tenants' || parts[0] === 'migrations') return html`<${OperatorConsole} rest=${parts} />`;
  return html`<${SignIn} />`;
}

render(html`<${App} />`, document.getElementById('app'));
