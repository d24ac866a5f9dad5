// The audit timeline (filters and pages in the URL) with its analytics as charts.
import { useState } from './preact.js';
import { t } from './api.js';
import { BarChart, Field, fmtDate, html, Loading, Pager, setQuery, useLoad, useLocation } from './ui.js';

const toIso = (local) => (local ? new Date(local).toISOString() : undefined);
const timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function AuditPage() {
  const { query } = useLocation();
  const params = { page: Number(query.get('page') ?? 1), page_size: 25, action: query.get('action') ?? '', entity_type: query.get('entity_type') ?? '', entity_id: query.get('entity_id') ?? '', from: query.get('from') ?? '', to: query.get('to') ?? '' };
  const key = JSON.stringify(params);
  const range = { from: toIso(params.from), to: toIso(params.to), timezone };
  const filters = { action: params.action || undefined, entity_type: params.entity_type || undefined };
  const log = useLoad(() => t.get('/audit-logs', { ...params, from: range.from, to: range.to }), key);
  const perDay = useLoad(() => t.get('/audit-logs/analytics', { group_by: 'day', ...range, ...filters }), key);
  const byAction = useLoad(() => t.get('/audit-logs/analytics', { group_by: 'action', limit: 10, ...range, entity_type: filters.entity_type }), key);
  const security = useLoad(() => t.get('/audit-logs/analytics/security', range), key);
  return html`<section aria-labelledby="audit-title">
    <h1 id="audit-title">Audit</h1>
    <${AuditFilters} params=${params} />
    <div class="charts">
      <${Loading} state=${perDay}>${(a) => html`<${BarChart} title=${`Events per day (${a.total} in all)`} data=${a.buckets.map((b) => ({ label: new Date(b.key).toLocaleDateString(), value: b.count }))} />`}<//>
      <${Loading} state=${byAction}>${(a) => html`<${BarChart} title="Most frequent actions" horizontal data=${a.buckets.map((b) => ({ label: b.key ?? '—', value: b.count }))} />`}<//>
    </div>
    <${Loading} state=${security}>${(s) => html`<section class="card" aria-labelledby="security-title">
      <h2 id="security-title">Security</h2>
      <p>${s.failed_logins.total} failed logins, ${s.lockouts.total} lockouts, ${s.permission_denials.total} permission denials in this range.</p>
      ${s.anomalies.length ? html`<ul class="anomalies">${s.anomalies.map((a) => html`<li role="alert">${a.rule === 'failed_login_spike' ? `Failed-login spike: ${a.count} in the hour of ${fmtDate(a.hour)} (usual ${a.baseline})` : `${a.actor} refused ${a.count} times in the hour of ${fmtDate(a.hour)}`}</li>`)}</ul>` : html`<p>No anomalies.</p>`}
    </section>`}<//>
    <${Loading} state=${log}>${(page) => html`
      <ol class="timeline" aria-label="Audit records, newest first">${page.items.map(
        (row) => html`<li key=${row.id}>
          <time datetime=${row.created_at}>${fmtDate(row.created_at)}</time>
          <strong>${row.action}</strong>
          <span>${row.entity_type ?? ''} ${row.entity_id ?? ''}</span>
          <span class="who">by ${row.actor_user_id ?? row.actor_type}${row.ip_address ? ` from ${row.ip_address}` : ''}</span>
          ${row.before || row.after || row.metadata ? html`<details><summary>Details of #${row.seq}</summary><pre>${JSON.stringify({ before: row.before, after: row.after, metadata: row.metadata }, null, 2)}</pre></details>` : null}
        </li>`,
      )}</ol>
      ${page.items.length ? null : html`<p>No audit records match.</p>`}
      <${Pager} page=${page.page} pageSize=${page.page_size} total=${page.total} label="Audit pages" />`}<//>
  </section>`;
}

function AuditFilters({ params }) {
  const [form, setForm] = useState(params);
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const submit = (event) => {
    event.preventDefault();
    setQuery({ action: form.action.trim(), entity_type: form.entity_type.trim(), entity_id: form.entity_id.trim(), from: form.from, to: form.to, page: undefined });
  };
  return html`<form class="toolbar" onSubmit=${submit} aria-label="Audit filters">
    <${Field} label="Action" value=${form.action} onInput=${set('action')} hint="e.g. users.create" />
    <${Field} label="Entity type" value=${form.entity_type} onInput=${set('entity_type')} />
    <${Field} label="Entity id" value=${form.entity_id} onInput=${set('entity_id')} />
    <${Field} label="From" type="datetime-local" value=${form.from} onInput=${set('from')} />
    <${Field} label="To" type="datetime-local" value=${form.to} onInput=${set('to')} />
    <button type="submit">Filter</button>
  </form>`;
}
