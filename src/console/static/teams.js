// Teams as a tree (every team loaded, a page of 100 at a time), with a team's members.
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, fullName, html, Link, Loading, ProblemView, setQuery, Table, useAction, useLoad, useLocation } from './ui.js';

async function allTeams() {
  const items = [];
  for (let page = 1; ; page++) {
    const answer = await t.get('/teams', { page, page_size: 100, sort: 'name' });
    items.push(...answer.items);
    if (items.length >= answer.total || answer.items.length === 0) return items;
  }
}

function Branch({ teams, parent, base, selected }) {
  const children = teams.filter((x) => x.parent_team_id === parent);
  if (!children.length) return null;
  return html`<ul role=${parent ? 'group' : undefined}>${children.map(
    (team) => html`<li key=${team.id}>
      <${Link} href="${base}/teams?team=${team.id}" aria-current=${selected === team.id ? 'true' : undefined}>${team.name}<//>
      <${Branch} teams=${teams} parent=${team.id} base=${base} selected=${selected} />
    </li>`,
  )}</ul>`;
}

export function TeamsPage({ base }) {
  const { query } = useLocation();
  const selected = query.get('team');
  const teams = useLoad(allTeams, 'teams');
  const [form, setForm] = useState({ name: '', parent: '' });
  const action = useAction();
  const create = (event) => {
    event.preventDefault();
    action.run(async () => {
      const team = await t.post('/teams', { name: form.name.trim(), parent_team_id: form.parent || null });
      setForm({ name: '', parent: '' });
      teams.reload();
      setQuery({ team: team.id });
    });
  };
  return html`<section aria-labelledby="teams-title">
    <h1 id="teams-title">Teams</h1>
    <${Loading} state=${teams}>${(list) => html`<div class="split">
      <nav aria-label="Team tree" class="tree">${list.length ? html`<${Branch} teams=${list} parent=${null} base=${base} selected=${selected} />` : html`<p>No teams yet.</p>`}</nav>
      <div>
        <${SelectedTeam} selected=${selected} team=${list.find((x) => x.id === selected)} loading=${teams.loading} />
        <form class="card" onSubmit=${create} aria-label="New team">
          <h2>New team</h2>
          <${Field} label="Team name" required value=${form.name} onInput=${(e) => setForm({ ...form, name: e.currentTarget.value })} />
          <${Field} label="Parent team" as="select" value=${form.parent} onChange=${(e) => setForm({ ...form, parent: e.currentTarget.value })}>
            <option value="">None (top level)</option>${list.map((x) => html`<option value=${x.id}>${x.name}</option>`)}
          <//>
          <${ProblemView} error=${action.error} />
          <button type="submit">Create team</button>
        </form>
      </div>
    </div>`}<//>
  </section>`;
}

/** The team the URL names: its members; while the tree reloads after a create, a wait; else why none. */
function SelectedTeam({ selected, team, loading }) {
  if (!selected) return html`<p>Choose a team to see its members.</p>`;
  if (team) return html`<${TeamMembers} key=${selected} team=${team} />`;
  if (loading) return html`<p aria-busy="true">Loading…</p>`;
  return html`<p role="alert">This tenant has no team with the id ${selected}: choose one in the tree.</p>`;
}

function TeamMembers({ team }) {
  const members = useLoad(() => t.get(`/teams/${team.id}/members`), team.id);
  const [email, setEmail] = useState('');
  const action = useAction();
  const add = (event) => {
    event.preventDefault();
    action.run(async () => {
      const found = await t.get('/users', { search: email.trim(), page_size: 5 });
      const user = found.items.find((u) => u.email === email.trim().toLowerCase()) ?? found.items[0];
      if (!user) throw new Error(`No user matches ${email}`);
      await t.put(`/teams/${team.id}/members/${user.id}`, { role: 'member' });
      setEmail('');
      members.reload();
    });
  };
  const remove = (userId) => action.run(async () => (await t.del(`/teams/${team.id}/members/${userId}`), members.reload()));
  return html`<section class="card" aria-labelledby="members-title">
    <h2 id="members-title">Members of ${team?.name ?? 'the team'}</h2>
    <${Loading} state=${members}>${(m) => html`<${Table} caption="Members" rows=${m.items.map((x) => ({ ...x, id: x.user_id }))} empty="No members." columns=${[
      { label: 'Email', cell: (x) => x.email },
      { label: 'Name', cell: fullName },
      { label: 'Role', cell: (x) => x.role },
      { label: 'Action', cell: (x) => html`<button type="button" onClick=${() => remove(x.user_id)}>Remove ${x.email}</button>` },
    ]} />`}<//>
    <form class="toolbar" onSubmit=${add} aria-label="Add a member">
      <${Field} label="Member's email" required value=${email} onInput=${(e) => setEmail(e.currentTarget.value)} />
      <button type="submit">Add member</button>
    </form>
    <${ProblemView} error=${action.error} />
  </section>`;
}
