// Roles: the permission matrix of every role, and one role's editor (each change previewed).
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, html, Link, Loading, navigate, ProblemView, useAction, useLoad, usePreview } from './ui.js';

/** 'granted', 'denied' or '' for one role and one permission, wildcards included. */
function grant(role, permission) {
  const [resource] = permission.split('.');
  const matches = (list) => list.includes(permission) || list.includes(`${resource}.*`) || list.includes('*');
  if (matches(role.denied_permissions)) return 'denied';
  return matches(role.permissions) ? 'granted' : '';
}

export function RolesPage({ base }) {
  const roles = useLoad(() => t.get('/roles', { page_size: 100, sort: '-priority' }), 'roles');
  const catalogue = useLoad(() => t.get('/permissions'), 'permissions');
  const [name, setName] = useState('');
  const action = useAction();
  const create = (event) => {
    event.preventDefault();
    action.run(async () => {
      const role = await t.post('/roles', { name: name.trim(), permissions: [] });
      navigate(`${base}/roles/${role.id}`);
    });
  };
  return html`<section aria-labelledby="roles-title">
    <h1 id="roles-title">Roles</h1>
    <form class="toolbar" onSubmit=${create} aria-label="New role">
      <${Field} label="New role name" required value=${name} onInput=${(e) => setName(e.currentTarget.value)} />
      <button type="submit">Create role</button>
    </form>
    <${ProblemView} error=${action.error} />
    <${Loading} state=${roles}>${(page) => html`<${Loading} state=${catalogue}>${(cat) => html`
      <div class="scroll">
        <table class="matrix">
          <caption>Permission matrix (✓ granted, ✗ denied)</caption>
          <thead><tr><th scope="col">Permission</th>${page.items.map((r) => html`<th scope="col"><${Link} href="${base}/roles/${r.id}">${r.name}<//></th>`)}</tr></thead>
          <tbody>${cat.items.map((p) => html`<tr key=${p.name}><th scope="row" title=${p.description}>${p.name}</th>${page.items.map((r) => {
            const g = grant(r, p.name);
            return html`<td class=${g}>${g === 'granted' ? html`<span aria-label="granted">✓</span>` : g === 'denied' ? html`<span aria-label="denied">✗</span>` : html`<span class="sr-only">not granted</span>`}</td>`;
          })}</tr>`)}</tbody>
        </table>
      </div>`}<//>`}<//>
  </section>`;
}

export function RolePage({ id, base }) {
  const role = useLoad(() => t.get(`/roles/${id}`), id);
  const catalogue = useLoad(() => t.get('/permissions'), 'permissions');
  return html`<${Loading} state=${role}>${(r) => html`<${Loading} state=${catalogue}>${(cat) => html`<${RoleEditor} key=${r.updated_at} role=${r} catalogue=${cat.items} base=${base} onSaved=${role.reload} />`}<//>`}<//>`;
}

function RoleEditor({ role, catalogue, base, onSaved }) {
  const [form, setForm] = useState({ description: role.description ?? '', priority: String(role.priority), permissions: role.permissions, denied: role.denied_permissions });
  const preview = usePreview();
  const action = useAction();
  const toggle = (list, name, on) => setForm({ ...form, [list]: on ? [...form[list], name] : form[list].filter((n) => n !== name) });
  const resources = [...new Set(catalogue.map((p) => p.resource))];
  const save = (event) => {
    event.preventDefault();
    const priority = Number(form.priority);
    const body = { description: form.description || null, priority: Number.isInteger(priority) ? priority : form.priority, permissions: form.permissions, denied_permissions: form.denied };
    preview.ask(`Save the role ${role.name}`, (dry) => t.patch(`/roles/${role.id}`, body, dry ? { dry_run: true } : undefined, { 'if-match': role.$etag }), onSaved);
  };
  const remove = () => preview.ask(`Delete the role ${role.name}`, (dry) => t.del(`/roles/${role.id}`, dry ? { dry_run: true } : undefined, { 'if-match': role.$etag }), () => navigate(`${base}/roles`));
  return html`<section aria-labelledby="role-title">
    ${preview.dialog}
    <p><${Link} href="${base}/roles">← Roles<//></p>
    <h1 id="role-title">Role ${role.name}${role.is_system ? ' (system)' : ''}</h1>
    <form class="card" onSubmit=${save} aria-label="Role">
      <${Field} label="Description" value=${form.description} onInput=${(e) => setForm({ ...form, description: e.currentTarget.value })} />
      <${Field} label="Priority" type="number" min="0" max="1000" value=${form.priority} onInput=${(e) => setForm({ ...form, priority: e.currentTarget.value })} hint="A higher priority out-ranks a lower one" />
      ${resources.map(
        (resource) => html`<fieldset class="perm-group"><legend>${resource}</legend>
          ${catalogue
            .filter((p) => p.resource === resource)
            .map(
              (p) => html`<div class="perm">
                <label class="check"><input type="checkbox" checked=${form.permissions.includes(p.name)} onChange=${(e) => toggle('permissions', p.name, e.currentTarget.checked)} /> grant ${p.name}</label>
                <label class="check"><input type="checkbox" checked=${form.denied.includes(p.name)} onChange=${(e) => toggle('denied', p.name, e.currentTarget.checked)} /> deny</label>
              </div>`,
            )}
        </fieldset>`,
      )}
      ${form.permissions.filter((n) => !catalogue.some((p) => p.name === n)).length ? html`<p>Also granted (wildcards): ${form.permissions.filter((n) => !catalogue.some((p) => p.name === n)).join(', ')}</p>` : null}
      <${ProblemView} error=${action.error} />
      <div class="actions">
        <button type="submit" class="primary">Preview and save</button>
        ${role.is_system ? null : html`<button type="button" class="danger" onClick=${remove}>Preview and delete</button>`}
      </div>
    </form>
  </section>`;
}
