// Operators (system token): tenants with search and pages, one tenant's lifecycle, migrations.
import { useState } from './preact.js';
import { send } from './api.js';
import { Field, fmtDate, html, Link, Loading, navigate, Pager, ProblemView, SearchForm, setQuery, Table, useAction, useLoad, useLocation, useRenderTiming } from './ui.js';

const api = (method, path, options) => send(method, `/api/v1${path}`, options);

export function TenantsPage() {
  const { query } = useLocation();
  const params = { page: Number(query.get('page') ?? 1), page_size: 20, search: query.get('search') ?? '', status: query.get('status') ?? '' };
  const key = JSON.stringify(params);
  const tenants = useLoad(async () => {
    const page = await api('GET', '/tenants', { query: params });
    performance.mark('console:tenants:api');
    return page;
  }, key);
  useRenderTiming('console:tenants', tenants.data);
  const [creating, setCreating] = useState(false);
  const status = html`<${Field} label="Status" as="select" value=${params.status} onChange=${(e) => setQuery({ status: e.currentTarget.value, page: undefined })}>
    <option value="">Any</option><option value="active">active</option><option value="suspended">suspended</option>
  <//>`;
  return html`<section aria-labelledby="tenants-title">
    <h1 id="tenants-title">Tenants</h1>
    <${SearchForm} label="Search tenants" extra=${status} />
    <p><button type="button" onClick=${() => setCreating(!creating)} aria-expanded=${creating}>New tenant</button></p>
    ${creating ? html`<${CreateTenant} />` : null}
    <${Loading} state=${tenants}>${(page) => html`
      <${Table} caption="Tenants" rows=${page.items} empty="No tenant matches." columns=${[
        { label: 'Slug', cell: (x) => html`<${Link} href="/console/tenants/${x.slug}">${x.slug}<//>` },
        { label: 'Name', cell: (x) => x.name },
        { label: 'Status', cell: (x) => x.tenant_status },
        { label: 'Schema', cell: (x) => `${x.status} v${x.schema_version}` },
        { label: 'Created', cell: (x) => fmtDate(x.created_at) },
      ]} />
      <${Pager} page=${page.page} pageSize=${page.page_size} total=${page.total} label="Tenant pages" />`}<//>
  </section>`;
}

function CreateTenant() {
  const [form, setForm] = useState({ slug: '', name: '', email: '', password: '' });
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const submit = (event) => {
    event.preventDefault();
    action.run(async () => {
      const body = { slug: form.slug.trim(), name: form.name.trim() || undefined };
      if (form.email) body.admin = { email: form.email.trim(), password: form.password };
      const tenant = await api('POST', '/tenants', { body });
      navigate(`/console/tenants/${tenant.slug}`);
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="New tenant">
    <h2>New tenant</h2>
    <${Field} label="Slug" required value=${form.slug} onInput=${set('slug')} hint="Lower-case letters, digits and _ (2 to 41 characters)" />
    <${Field} label="Name" value=${form.name} onInput=${set('name')} />
    <${Field} label="First admin's email" type="email" value=${form.email} onInput=${set('email')} />
    <${Field} label="First admin's password" type="password" autocomplete="new-password" value=${form.password} onInput=${set('password')} />
    <${ProblemView} error=${action.error} />
    <button type="submit" class="primary" disabled=${action.busy}>Create tenant</button>
  </form>`;
}

export function TenantPage({ id }) {
  const tenant = useLoad(() => api('GET', `/tenants/${encodeURIComponent(id)}`), id);
  const backups = useLoad(() => api('GET', `/tenants/${encodeURIComponent(id)}/backups`), id);
  const [fork, setFork] = useState({ slug: '', name: '' });
  const [note, setNote] = useState(null);
  const action = useAction();
  const setStatus = (x, status) => action.run(async () => (await api('PATCH', `/tenants/${x.id}`, { body: { status } }), tenant.reload()));
  const doFork = (x) => (event) => {
    event.preventDefault();
    action.run(async () => {
      const copy = await api('POST', `/tenants/${x.id}/fork`, { body: { slug: fork.slug.trim(), name: fork.name.trim() || undefined } });
      navigate(`/console/tenants/${copy.slug}`);
    });
  };
  const backup = (x) => action.run(async () => (await api('POST', `/tenants/${x.id}/backups`), setNote('Backup written.'), backups.reload()));
  const download = (x) =>
    action.run(async () => {
      const res = await api('GET', `/tenants/${x.id}/export`, { raw: true, headers: { accept: 'application/gzip, application/problem+json' } });
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `${x.slug}.tar.gz`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setNote(`Export of ${x.slug} downloaded.`);
    });
  return html`<${Loading} state=${tenant}>${(x) => html`<section aria-labelledby="tenant-title">
    <p><${Link} href="/console/tenants">← Tenants<//></p>
    <h1 id="tenant-title">${x.name} (${x.slug})</h1>
    <dl class="facts">
      <dt>Status</dt><dd>${x.tenant_status}</dd>
      <dt>Schema</dt><dd>${x.schema_name}: ${x.status}, version ${x.schema_version}</dd>
      ${x.last_error ? html`<dt>Last error</dt><dd>${x.last_error}</dd>` : null}
      <dt>Created</dt><dd>${fmtDate(x.created_at)}</dd>
    </dl>
    <div class="actions">
      ${x.tenant_status === 'suspended' ? html`<button type="button" onClick=${() => setStatus(x, 'active')}>Resume</button>` : html`<button type="button" onClick=${() => setStatus(x, 'suspended')}>Suspend</button>`}
      <button type="button" onClick=${() => download(x)}>Export (download)</button>
      <button type="button" onClick=${() => backup(x)}>Back up now</button>
      <${Link} href="/console/t/${x.slug}/users">Open as tenant administrator<//>
    </div>
    ${note ? html`<p role="status">${note}</p>` : null}
    <${ProblemView} error=${action.error} />
    <form class="card" onSubmit=${doFork(x)} aria-label="Fork">
      <h2>Fork</h2>
      <p>A copy inside the database under a new slug, without sessions, API keys, webhook endpoints or pending events.</p>
      <${Field} label="New slug" required value=${fork.slug} onInput=${(e) => setFork({ ...fork, slug: e.currentTarget.value })} />
      <${Field} label="New name" value=${fork.name} onInput=${(e) => setFork({ ...fork, name: e.currentTarget.value })} />
      <button type="submit">Fork tenant</button>
    </form>
    <${Loading} state=${backups}>${(b) => html`<${Table} caption="Backups, newest first" rows=${b.items ?? b} empty="No backups." columns=${[
      { label: 'When', cell: (r) => fmtDate(r.created_at) },
      { label: 'Kind', cell: (r) => r.kind },
      { label: 'Size', cell: (r) => `${Math.ceil(r.size_bytes / 1024)} KiB` },
      { label: 'Schema version', cell: (r) => r.schema_version },
    ]} />`}<//>
  </section>`}<//>`;
}

export function MigrationsPage() {
  const { query } = useLocation();
  const params = { page: Number(query.get('page') ?? 1), page_size: 50, state: query.get('state') ?? '' };
  const states = useLoad(() => api('GET', '/migrations', { query: params }), JSON.stringify(params));
  return html`<section aria-labelledby="migrations-title">
    <h1 id="migrations-title">Migrations</h1>
    <${Loading} state=${states}>${(m) => html`
      <p>Latest version ${m.latest_version}: ${m.summary.done} done, ${m.summary.pending} pending, ${m.summary.running} running, ${m.summary.failed} failed.</p>
      <div class="toolbar">
        <${Field} label="State" as="select" value=${params.state} onChange=${(e) => setQuery({ state: e.currentTarget.value, page: undefined })}>
          <option value="">Any</option>${['pending', 'running', 'done', 'failed'].map((s) => html`<option value=${s}>${s}</option>`)}
        <//>
      </div>
      <${Table} caption="Tenant schemas" rows=${m.items.map((r) => ({ ...r, id: r.schema_name }))} empty="No schema in this state." columns=${[
        { label: 'Schema', cell: (r) => (r.slug ? html`<${Link} href="/console/tenants/${r.slug}">${r.schema_name}<//>` : `${r.schema_name}${r.spare ? ' (spare)' : ''}`) },
        { label: 'Version', cell: (r) => r.version },
        { label: 'State', cell: (r) => r.state },
        { label: 'Last error', cell: (r) => r.last_error ?? '' },
        { label: 'Finished', cell: (r) => fmtDate(r.finished_at) },
      ]} />
      <${Pager} page=${m.page} pageSize=${m.page_size} total=${m.total} label="Migration pages" />`}<//>
    <${ProblemView} error=${null} />
  </section>`;
}
