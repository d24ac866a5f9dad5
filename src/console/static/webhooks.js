// Webhook endpoints, and one endpoint's deliveries (retry, rotate the secret, enable/disable).
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, fmtDate, html, Link, Loading, navigate, Pager, ProblemView, setQuery, Table, useAction, useLoad, useLocation } from './ui.js';

const splitList = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

export function WebhooksPage({ base }) {
  const { query } = useLocation();
  const page = Number(query.get('page') ?? 1);
  const hooks = useLoad(() => t.get('/webhooks', { page, page_size: 20 }), String(page));
  const [form, setForm] = useState({ url: '', events: 'user.*', description: '' });
  const [secret, setSecret] = useState(null);
  const action = useAction();
  const create = (event) => {
    event.preventDefault();
    action.run(async () => {
      const created = await t.post('/webhooks', { url: form.url.trim(), events: splitList(form.events), description: form.description || null });
      setSecret(created);
      hooks.reload();
    });
  };
  return html`<section aria-labelledby="hooks-title">
    <h1 id="hooks-title">Webhooks</h1>
    ${secret ? html`<div class="card" role="status"><p>Endpoint created. Its signing secret is shown only now:</p><p><code>${secret.secret}</code></p><button type="button" onClick=${() => navigate(`${base}/webhooks/${secret.id}`)}>Open the endpoint</button></div>` : null}
    <${Loading} state=${hooks}>${(p) => html`
      <${Table} caption="Endpoints" rows=${p.items} empty="No endpoints yet." columns=${[
        { label: 'URL', cell: (h) => html`<${Link} href="${base}/webhooks/${h.id}">${h.url}<//>` },
        { label: 'Events', cell: (h) => h.events.join(', ') },
        { label: 'State', cell: (h) => (h.enabled ? (h.failing_since ? `failing since ${fmtDate(h.failing_since)}` : 'enabled') : `disabled${h.disabled_reason ? ` (${h.disabled_reason})` : ''}`) },
      ]} />
      <${Pager} page=${p.page} pageSize=${p.page_size} total=${p.total} label="Endpoint pages" />`}<//>
    <form class="card" onSubmit=${create} aria-label="New endpoint">
      <h2>New endpoint</h2>
      <${Field} label="URL" type="url" required value=${form.url} onInput=${(e) => setForm({ ...form, url: e.currentTarget.value })} />
      <${Field} label="Events" required value=${form.events} onInput=${(e) => setForm({ ...form, events: e.currentTarget.value })} hint="Event types separated by commas: user.created, role.*, or *" />
      <${Field} label="Description" value=${form.description} onInput=${(e) => setForm({ ...form, description: e.currentTarget.value })} />
      <${ProblemView} error=${action.error} />
      <button type="submit" class="primary" disabled=${action.busy}>Add endpoint</button>
    </form>
  </section>`;
}

export function WebhookPage({ id, base }) {
  const { query } = useLocation();
  const status = query.get('status') ?? '';
  const page = Number(query.get('page') ?? 1);
  const hook = useLoad(() => t.get(`/webhooks/${id}`), id);
  const deliveries = useLoad(() => t.get(`/webhooks/${id}/deliveries`, { page, page_size: 20, status: status || undefined }), `${id}:${status}:${page}`);
  const [secret, setSecret] = useState(null);
  const action = useAction();
  const retry = (deliveryId) => action.run(async () => (await t.post(`/webhooks/${id}/deliveries/${deliveryId}/retry`), deliveries.reload()));
  // Rotating changes the endpoint's version: read it again, or the next change would be refused.
  const rotate = () => action.run(async () => (setSecret((await t.post(`/webhooks/${id}/rotate-secret`)).secret), hook.reload()));
  const toggle = (h) => action.run(async () => (await t.patch(`/webhooks/${id}`, { enabled: !h.enabled }, undefined, { 'if-match': h.$etag }), hook.reload()));
  const remove = (h) => action.run(async () => (await t.del(`/webhooks/${id}`, undefined, { 'if-match': h.$etag }), navigate(`${base}/webhooks`)));
  return html`<${Loading} state=${hook}>${(h) => html`<section aria-labelledby="hook-title">
    <p><${Link} href="${base}/webhooks">← Webhooks<//></p>
    <h1 id="hook-title">${h.url}</h1>
    <p>${h.description ?? ''} Events: ${h.events.join(', ')}. ${h.enabled ? 'Enabled.' : `Disabled${h.disabled_reason ? `: ${h.disabled_reason}` : ''}.`}</p>
    <div class="actions">
      <button type="button" onClick=${() => toggle(h)}>${h.enabled ? 'Disable' : 'Enable'}</button>
      <button type="button" onClick=${rotate}>Rotate the secret</button>
      <button type="button" class="danger" onClick=${() => remove(h)}>Delete</button>
    </div>
    ${secret ? html`<p role="status">New secret (shown once; the old one signs beside it for 24 hours): <code>${secret}</code></p>` : null}
    <${ProblemView} error=${action.error} />
    <div class="toolbar">
      <${Field} label="Delivery status" as="select" value=${status} onChange=${(e) => setQuery({ status: e.currentTarget.value, page: undefined })}>
        <option value="">Any</option><option value="pending">pending</option><option value="succeeded">succeeded</option><option value="failed">failed</option>
      <//>
    </div>
    <${Loading} state=${deliveries}>${(p) => html`
      <${Table} caption="Deliveries, newest event first" rows=${p.items} empty="No deliveries." columns=${[
        { label: 'Event', cell: (d) => `${d.event_type} (${d.event_id})` },
        { label: 'Status', cell: (d) => `${d.status}${d.last_status_code ? ` · HTTP ${d.last_status_code}` : ''}${d.last_error ? ` · ${d.last_error}` : ''}` },
        { label: 'Attempts', cell: (d) => d.attempts },
        { label: 'When', cell: (d) => fmtDate(d.delivered_at ?? d.next_attempt_at ?? d.updated_at) },
        { label: 'Action', cell: (d) => (d.status === 'succeeded' ? '' : html`<button type="button" onClick=${() => retry(d.id)}>Retry</button>`) },
      ]} />
      <${Pager} page=${p.page} pageSize=${p.page_size} total=${p.total} label="Delivery pages" />`}<//>
  </section>`}<//>`;
}
