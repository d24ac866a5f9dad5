// The console's shell: sign-in, the tenant and operator layouts, and the routes (URL → page).
import { render, useEffect, useState } from './preact.js';
import { currentSession, operatorSignIn, resume, signIn, signOut } from './api.js';
import { Field, html, Link, navigate, ProblemView, useAction, useLocation } from './ui.js';
import { UserPage, UsersPage } from './users.js';
import { RolePage, RolesPage } from './roles.js';
import { TeamsPage } from './teams.js';
import { SettingsPage } from './settings.js';
import { AuditPage } from './audit.js';
import { WebhookPage, WebhooksPage } from './webhooks.js';
import { RecordsPage } from './records.js';
import { MigrationsPage, TenantPage, TenantsPage } from './tenants.js';

const tenantSections = [
  ['users', 'Users'],
  ['roles', 'Roles'],
  ['teams', 'Teams'],
  ['settings', 'Settings'],
  ['audit', 'Audit'],
  ['webhooks', 'Webhooks'],
  ['records', 'Records'],
];

function SignIn() {
  const { query } = useLocation();
  const operator = query.get('mode') === 'operator';
  const next = query.get('next');
  const [slug, setSlug] = useState(query.get('tenant') ?? '');
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const action = useAction();
  const safeNext = (fallback) => (next && next.startsWith('/console/') ? next : fallback);
  const submit = (event) => {
    event.preventDefault();
    action.run(async () => {
      if (operator) {
        await operatorSignIn(token);
        navigate(safeNext('/console/tenants'), { replace: true });
      } else {
        const tenant = slug.trim().toLowerCase();
        await signIn(tenant, login.trim(), password);
        navigate(safeNext(`/console/t/${encodeURIComponent(tenant)}/users`), { replace: true });
      }
    });
  };
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
