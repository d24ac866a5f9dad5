// Records (the CRM-style tables): a list per type with search and pages; create from JSON, delete.
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, fmtDate, html, Link, Loading, Pager, ProblemView, SearchForm, Table, useAction, useLoad, useLocation } from './ui.js';

export const RECORD_TYPES = [
  ['notes', 'Notes', { title: 'A note', content: 'Text' }],
  ['tasks', 'Tasks', { title: 'Call back', status: 'pending', priority: 'medium' }],
  ['logacalls', 'Call logs', { phone_number: '+15550100', direction: 'outbound' }],
  ['events', 'Events', { title: 'Meeting', start_at: new Date().toISOString(), end_at: new Date(Date.now() + 3_600_000).toISOString() }],
  ['reviews', 'Reviews', { reviewable_type: 'product', reviewable_id: 'p-1', rating: 5 }],
  ['carbon-footprints', 'Carbon footprints', { scope: 'scope1', category: 'fuel', co2e_kg: 12.5, period_start: '2026-01-01', period_end: '2026-01-31' }],
  ['channel-configs', 'Channel configs', { channel: 'email', name: 'Default', is_enabled: true }],
  ['attachments', 'Attachments', null],
];

const SKIP = new Set(['id', 'created_at', 'updated_at', 'deleted_at', 'created_by', 'updated_by', 'version']);

export function RecordsPage({ base, type }) {
  const current = RECORD_TYPES.find(([key]) => key === type) ?? RECORD_TYPES[0];
  const [key, label, example] = current;
  const { query } = useLocation();
  const params = { page: Number(query.get('page') ?? 1), page_size: 20, search: query.get('search') ?? '' };
  const list = useLoad(() => t.get(`/${key}`, params), `${key}:${JSON.stringify(params)}`);
  const action = useAction();
  const [json, setJson] = useState(null);
  const body = json ?? (example ? JSON.stringify(example, null, 2) : '');
  const create = (event) => {
    event.preventDefault();
    action.run(async () => {
      let parsed;
      try {
        parsed = JSON.parse(body);
      } catch {
        throw new Error('The record is not valid JSON.');
      }
      await t.post(`/${key}`, parsed);
      setJson(null);
      list.reload();
    });
  };
  const remove = (row) => action.run(async () => (await t.del(`/${key}/${row.id}`), list.reload()));
  return html`<section aria-labelledby="records-title">
    <h1 id="records-title">${label}</h1>
    <nav class="tabs" aria-label="Record types">${RECORD_TYPES.map(([k, l]) => html`<${Link} href="${base}/records/${k}" aria-current=${k === key ? 'page' : undefined}>${l}<//>`)}</nav>
    <${SearchForm} label=${`Search ${label.toLowerCase()}`} />
    <${ProblemView} error=${action.error} />
    <${Loading} state=${list}>${(page) => {
      const columns = Object.keys(page.items[0] ?? {}).filter((c) => !SKIP.has(c) && page.items.every((r) => r[c] === null || typeof r[c] !== 'object')).slice(0, 5);
      return html`<${Table} caption=${label} rows=${page.items} empty="No records match." columns=${[
          ...columns.map((c) => ({ label: c, cell: (r) => String(r[c] ?? '—') })),
          { label: 'Updated', cell: (r) => fmtDate(r.updated_at) },
          { label: 'Action', cell: (r) => html`<button type="button" onClick=${() => remove(r)}>Delete</button>` },
        ]} />
        <${Pager} page=${page.page} pageSize=${page.page_size} total=${page.total} label="Record pages" />`;
    }}<//>
    ${example
      ? html`<form class="card" onSubmit=${create} aria-label=${`New ${label.toLowerCase()}`}>
          <h2>New record</h2>
          <${Field} label="Record (JSON)" as="textarea" rows="8" value=${body} onInput=${(e) => setJson(e.currentTarget.value)} hint="The fields are those of the API (see /docs)" />
          <button type="submit">Create</button>
        </form>`
      : html`<p>Upload files through the API (multipart POST ${key}).</p>`}
  </section>`;
}
