// Users: the paged, searchable list; one user's profile, roles, overrides, "why" and sessions.
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, fmtDate, fullName, html, Link, Loading, navigate, Pager, ProblemView, SearchForm, setQuery, Table, useAction, useLoad, useLocation, usePreview, useRenderTiming } from './ui.js';

const STATUSES = ['active', 'invited', 'suspended', 'inactive'];

export function UsersPage({ base }) {
  const { query } = useLocation();
  const params = { page: Number(query.get('page') ?? 1), page_size: 20, search: query.get('search') ?? '', status: query.get('status') ?? '', role: query.get('role') ?? '', sort: query.get('sort') ?? '' };
  const key = JSON.stringify(params);
  const users = useLoad(async () => {
    const page = await t.get('/users', params);
    performance.mark('console:users:api');
    return page;
  }, key);
  useRenderTiming('console:users', users.data);
  const roles = useLoad(() => t.get('/roles', { page_size: 100 }), 'roles');
  const [creating, setCreating] = useState(false);
  const filters = html`
    <${Field} label="Status" as="select" value=${params.status} onChange=${(e) => setQuery({ status: e.currentTarget.value, page: undefined })}>
      <option value="">Any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
    <//>
    <${Field} label="Role" as="select" value=${params.role} onChange=${(e) => setQuery({ role: e.currentTarget.value, page: undefined })}>
      <option value="">Any</option>${(roles.data?.items ?? []).map((r) => html`<option value=${r.name}>${r.name}</option>`)}
    <//>
    <${Field} label="Sort" as="select" value=${params.sort} onChange=${(e) => setQuery({ sort: e.currentTarget.value, page: undefined })}>
      <option value="">Newest first</option><option value="email">Email</option><option value="-last_login_at">Last sign-in</option><option value="last_name">Last name</option>
    <//>`;
  return html`<section aria-labelledby="users-title">
    <h1 id="users-title">Users</h1>
    <${SearchForm} label="Search users" extra=${filters} />
    <p><button type="button" onClick=${() => setCreating(!creating)} aria-expanded=${creating}>New user</button></p>
    ${creating ? html`<${CreateUser} onCreated=${(u) => navigate(`${base}/users/${u.id}`)} roles=${roles.data?.items ?? []} />` : null}
    <${Loading} state=${users}>${(page) => html`
      <${Table}
        caption="Users"
        rows=${page.items}
        empty="No user matches."
        columns=${[
          { label: 'Email', cell: (u) => html`<${Link} href="${base}/users/${u.id}">${u.email}<//>` },
          { label: 'Name', cell: fullName },
          { label: 'Status', cell: (u) => u.status },
          { label: 'Roles', cell: (u) => u.roles.join(', ') },
          { label: 'Last sign-in', cell: (u) => fmtDate(u.last_login_at) },
        ]}
      />
      <${Pager} page=${page.page} pageSize=${page.page_size} total=${page.total} label="User pages" />`}<//>
  </section>`;
}

function CreateUser({ onCreated, roles }) {
  const [form, setForm] = useState({ email: '', first_name: '', last_name: '', password: '', role: 'user' });
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const submit = (event) => {
    event.preventDefault();
    action.run(async () => {
      const body = { email: form.email, roles: [form.role] };
      if (form.first_name) body.first_name = form.first_name;
      if (form.last_name) body.last_name = form.last_name;
      if (form.password) body.password = form.password;
      onCreated(await t.post('/users', body));
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="New user">
    <h2>New user</h2>
    <${Field} label="Email" type="email" required value=${form.email} onInput=${set('email')} />
    <${Field} label="First name" value=${form.first_name} onInput=${set('first_name')} />
    <${Field} label="Last name" value=${form.last_name} onInput=${set('last_name')} />
    <${Field} label="Password" type="password" autocomplete="new-password" value=${form.password} onInput=${set('password')} hint="Leave empty to invite: the user gets a link by mail to set one." />
    <${Field} label="Role" as="select" value=${form.role} onChange=${set('role')}>${roles.map((r) => html`<option value=${r.name}>${r.name}</option>`)}<//>
    <${ProblemView} error=${action.error} />
    <button type="submit" class="primary" disabled=${action.busy}>Create user</button>
  </form>`;
}

const TABS = [
  ['profile', 'Profile'],
  ['access', 'Roles and permissions'],
  ['sessions', 'Sessions'],
];

export function UserPage({ id, base }) {
  const { query } = useLocation();
  const tab = query.get('tab') ?? 'profile';
  const user = useLoad(() => t.get(`/users/${id}`), id);
  return html`<${Loading} state=${user}>${(u) => html`<section aria-labelledby="user-title">
    <p><${Link} href="${base}/users">← Users<//></p>
    <h1 id="user-title">${u.email}</h1>
    <nav class="tabs" aria-label="User sections">${TABS.map(([key, label]) => html`<${Link} href="${base}/users/${id}?tab=${key}" aria-current=${tab === key ? 'page' : undefined}>${label}<//>`)}</nav>
    ${tab === 'access' ? html`<${UserAccess} user=${u} onChange=${user.reload} />` : tab === 'sessions' ? html`<${UserSessions} user=${u} />` : html`<${UserProfile} user=${u} onChange=${user.reload} base=${base} />`}
  </section>`}<//>`;
}

function UserProfile({ user, onChange, base }) {
  const [form, setForm] = useState({ first_name: user.first_name ?? '', last_name: user.last_name ?? '', username: user.username ?? '', phone: user.phone ?? '', locale: user.locale ?? '', timezone: user.timezone ?? '', status: user.status });
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const save = (event) => {
    event.preventDefault();
    action.run(async () => {
      const body = Object.fromEntries(Object.entries(form).map(([k, v]) => [k, v === '' && k !== 'status' ? null : v]));
      await t.patch(`/users/${user.id}`, body, undefined, { 'if-match': user.$etag });
      onChange();
    });
  };
  const suspend = () => action.run(async () => (await t.patch(`/users/${user.id}`, { status: user.status === 'suspended' ? 'active' : 'suspended' }, undefined, { 'if-match': user.$etag }), onChange()));
  const remove = () => action.run(async () => (await t.del(`/users/${user.id}`, undefined, { 'if-match': user.$etag }), navigate(`${base}/users`)));
  return html`<form class="card" onSubmit=${save} aria-label="Profile">
    <dl class="facts"><dt>Status</dt><dd>${user.status}</dd><dt>Email verified</dt><dd>${user.is_email_verified ? 'yes' : 'no'}</dd><dt>Created</dt><dd>${fmtDate(user.created_at)}</dd><dt>Last sign-in</dt><dd>${fmtDate(user.last_login_at)}</dd></dl>
    <${Field} label="First name" value=${form.first_name} onInput=${set('first_name')} />
    <${Field} label="Last name" value=${form.last_name} onInput=${set('last_name')} />
    <${Field} label="Username" value=${form.username} onInput=${set('username')} />
    <${Field} label="Phone" value=${form.phone} onInput=${set('phone')} />
    <${Field} label="Language" value=${form.locale} onInput=${set('locale')} hint="For example en or de" />
    <${Field} label="Time zone" value=${form.timezone} onInput=${set('timezone')} hint="For example Europe/Berlin" />
    <${ProblemView} error=${action.error} />
    <div class="actions">
      <button type="submit" class="primary" disabled=${action.busy}>Save</button>
      <button type="button" onClick=${suspend} disabled=${action.busy}>${user.status === 'suspended' ? 'Reactivate' : 'Suspend'}</button>
      <button type="button" class="danger" onClick=${remove} disabled=${action.busy}>Delete</button>
    </div>
  </form>`;
}

function UserAccess({ user, onChange }) {
  const access = useLoad(() => t.get(`/users/${user.id}/permissions`), `${user.id}:${user.updated_at}`);
  const roles = useLoad(() => t.get('/roles', { page_size: 100 }), 'roles');
  const catalogue = useLoad(() => t.get('/permissions'), 'permissions');
  const [chosen, setChosen] = useState(null);
  const [override, setOverride] = useState({ permission: '', effect: 'allow' });
  const [why, setWhy] = useState('');
  const preview = usePreview();
  const selected = chosen ?? user.roles;
  const refresh = () => {
    setChosen(null);
    onChange();
    access.reload();
  };
  const saveRoles = (event) => {
    event.preventDefault();
    preview.ask(`Change the roles of ${user.email}`, (dry) => t.put(`/users/${user.id}/roles`, { roles: selected }, dry ? { dry_run: true } : undefined), refresh);
  };
  const putOverride = (event) => {
    event.preventDefault();
    const p = override.permission.trim();
    preview.ask(`${override.effect === 'allow' ? 'Allow' : 'Deny'} ${p} for ${user.email}`, (dry) => t.put(`/users/${user.id}/permissions/${encodeURIComponent(p)}`, { effect: override.effect }, dry ? { dry_run: true } : undefined), refresh);
  };
  const dropOverride = (permission) =>
    preview.ask(`Remove the override of ${permission} for ${user.email}`, (dry) => t.del(`/users/${user.id}/permissions/${encodeURIComponent(permission)}`, dry ? { dry_run: true } : undefined), refresh);
  const names = (catalogue.data?.items ?? catalogue.data ?? []).map((p) => (typeof p === 'string' ? p : p.name));
  return html`<div>
    ${preview.dialog}
    <form class="card" onSubmit=${saveRoles} aria-label="Roles">
      <fieldset><legend>Roles</legend>
        ${(roles.data?.items ?? []).map(
          (r) => html`<label class="check"><input type="checkbox" checked=${selected.includes(r.name)} onChange=${(e) => setChosen(e.currentTarget.checked ? [...selected, r.name] : selected.filter((n) => n !== r.name))} /> ${r.name} <small>${r.description ?? ''}</small></label>`,
        )}
      </fieldset>
      <button type="submit" class="primary">Preview and save roles</button>
    </form>
    <${Loading} state=${access}>${(a) => html`
      <section class="card" aria-labelledby="overrides-title">
        <h2 id="overrides-title">Overrides</h2>
        <${Table} caption="Permission overrides" rows=${a.overrides.map((o) => ({ ...o, id: o.permission }))} empty="No overrides." columns=${[
          { label: 'Permission', cell: (o) => o.permission },
          { label: 'Effect', cell: (o) => o.effect },
          { label: 'Expires', cell: (o) => fmtDate(o.expires_at) },
          { label: 'Action', cell: (o) => html`<button type="button" onClick=${() => dropOverride(o.permission)}>Remove ${o.permission}</button>` },
        ]} />
        <form onSubmit=${putOverride} class="toolbar" aria-label="New override">
          <${Field} label="Permission" required list="permission-names" value=${override.permission} onInput=${(e) => setOverride({ ...override, permission: e.currentTarget.value })} />
          <datalist id="permission-names">${names.map((n) => html`<option value=${n} />`)}</datalist>
          <${Field} label="Effect" as="select" value=${override.effect} onChange=${(e) => setOverride({ ...override, effect: e.currentTarget.value })}><option value="allow">allow</option><option value="deny">deny</option><//>
          <button type="submit">Preview and set override</button>
        </form>
      </section>
      <section class="card" aria-labelledby="why-title">
        <h2 id="why-title">Why can (or can't) this user…</h2>
        <${Field} label="Filter permissions" type="search" value=${why} onInput=${(e) => setWhy(e.currentTarget.value)} />
        <${Table} caption="Decisions and their reasons" rows=${a.decisions.filter((d) => d.permission.includes(why.trim())).map((d) => ({ ...d, id: d.permission }))} columns=${[
          { label: 'Permission', cell: (d) => d.permission },
          { label: 'Allowed', cell: (d) => (d.allowed ? 'yes' : 'no') },
          { label: 'Because', cell: (d) => reason(d.reason) },
        ]} />
      </section>`}<//>
  </div>`;
}

function reason(r) {
  if (r.source === 'override') return `override: ${r.effect} ${r.permission ?? ''}${r.expires_at ? ` until ${fmtDate(r.expires_at)}` : ''}`;
  if (r.source === 'role') return `role ${r.role}${r.effect ? ` (${r.effect} ${r.permission ?? ''})` : ''}`;
  return 'no grant (denied by default)';
}

function UserSessions({ user }) {
  const sessions = useLoad(() => t.get(`/users/${user.id}/sessions`), user.id);
  const action = useAction();
  const end = (id) => action.run(async () => (await t.del(`/users/${user.id}/sessions/${id}`), sessions.reload()));
  const endAll = () => action.run(async () => (await t.del(`/users/${user.id}/sessions`), sessions.reload()));
  return html`<section class="card" aria-label="Sessions">
    <${ProblemView} error=${action.error} />
    <${Loading} state=${sessions}>${(list) => {
      const items = list.items ?? list;
      return html`<${Table} caption="Live sessions" rows=${items} empty="No live sessions." columns=${[
          { label: 'Started', cell: (s) => fmtDate(s.created_at) },
          { label: 'Last seen', cell: (s) => fmtDate(s.last_seen_at) },
          { label: 'From', cell: (s) => `${s.ip_address ?? '—'} ${s.user_agent ?? ''}` },
          { label: 'Action', cell: (s) => html`<button type="button" onClick=${() => end(s.id)}>End session</button>` },
        ]} />
        ${items.length ? html`<button type="button" class="danger" onClick=${endAll}>End all sessions</button>` : null}`;
    }}<//>
  </section>`;
}
