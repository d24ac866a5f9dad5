// Shared pieces of the console: routing (the URL is the state), data loading, forms, tables,
// the change preview dialog and charts. Preact + htm as plain ES modules: no build step.
import { html, useCallback, useEffect, useLayoutEffect, useRef, useState } from './preact.js';
import { Problem } from './api.js';

export { html };

// --- Routing: history.pushState; every view reads its state from location. ---
const listeners = new Set();
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((fn) => fn());
}
addEventListener('popstate', () => listeners.forEach((fn) => fn()));

export function useLocation() {
  const [, setTick] = useState(0);
  // A layout effect: subscribed before any child's effect can navigate.
  useLayoutEffect(() => {
    const fn = () => setTick((n) => n + 1);
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Replaces some query parameters of the current URL (empty values removed), as a new history entry. */
export function setQuery(changes, { replace = false } = {}) {
  const query = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') query.delete(k);
    else query.set(k, String(v));
  }
  const q = query.toString();
  navigate(`${location.pathname}${q ? `?${q}` : ''}`, { replace });
}

/** A same-origin link that navigates without a reload (a modified click still opens a new tab). */
export function Link({ href, children, ...rest }) {
  const onClick = (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`;
}

// --- Loading ---
/** Runs `load` whenever `key` changes; `{ data, error, loading, reload }`. */
export function useLoad(load, key) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  return { ...state, reload: useCallback(() => setTick((n) => n + 1), []) };
}

/** Wraps an action: `run(fn)` keeps its error for display and its busy state. */
export function useAction() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run, clear: () => setError(null) };
}

// --- Display ---
let ids = 0;
const useId = (prefix) => useRef(`${prefix}-${++ids}`).current;

/** A problem's message as the service words it (in the caller's language), with its field errors. */
export function ProblemView({ error }) {
  if (!error) return null;
  const problem = error instanceof Problem ? error : null;
  // With field errors the detail only repeats them: the title heads their list instead.
  const headline = problem ? (problem.errors.length && problem.body.title ? problem.body.title : problem.message) : String(error.message ?? error);
  return html`<div class="problem" role="alert">
    <strong>${headline}</strong>
    ${problem?.errors.length ? html`<ul>${problem.errors.map((e) => html`<li><code>${e.field}</code>: ${e.message ?? e.reason}</li>`)}</ul>` : null}
    ${problem?.code === 'request.version_mismatch' ? html`<p>It changed since this page loaded (here, in another tab or by someone else): reload the page to see it as it is now, then try again.</p>` : null}
  </div>`;
}

/** A labelled control. `as` is input (default), select or textarea. */
export function Field({ label, as = 'input', hint, children, ...props }) {
  const id = useId('f');
  const hintId = hint ? `${id}-hint` : undefined;
  const control =
    as === 'select'
      ? html`<select id=${id} aria-describedby=${hintId} ...${props}>${children}</select>`
      : as === 'textarea'
        ? html`<textarea id=${id} aria-describedby=${hintId} ...${props}></textarea>`
        : html`<input id=${id} aria-describedby=${hintId} ...${props} />`;
  return html`<div class="field"><label for=${id}>${label}</label>${control}${hint ? html`<small id=${hintId}>${hint}</small>` : null}</div>`;
}

export function Loading({ state, children }) {
  if (state.error) return html`<${ProblemView} error=${state.error} />`;
  if (state.data === undefined) return html`<p aria-busy="true">Loading…</p>`;
  return children(state.data);
}

/** Server-side paging: the page lives in the URL (`page`). */
export function Pager({ page, pageSize, total, label = 'Pages' }) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  // A page past the last (an old link, or rows removed since): say so and offer the last one.
  if (page > pages) {
    return html`<nav class="pager" aria-label=${label}>
      <span aria-live="polite">Page ${page} is past the last page (${pages}; ${total} in all).</span>
      <button type="button" onClick=${() => setQuery({ page: pages === 1 ? undefined : pages })}>Go to the last page</button>
    </nav>`;
  }
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" disabled=${page <= 1} onClick=${() => setQuery({ page: page - 1 })}>Previous</button>
    <span aria-live="polite">Page ${page} of ${pages} (${total} in all)</span>
    <button type="button" disabled=${page >= pages} onClick=${() => setQuery({ page: page + 1 })}>Next</button>
  </nav>`;
}

/** `columns`: [{ label, cell: (row) => content }]. */
export function Table({ caption, columns, rows, empty = 'Nothing here yet.' }) {
  if (!rows.length) return html`<p>${empty}</p>`;
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col">${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((row) => html`<tr key=${row.id}>${columns.map((c) => html`<td>${c.cell(row)}</td>`)}</tr>`)}</tbody>
  </table>`;
}

/** A search box bound to the URL's `search` (and page 1), submitted with Enter or its button. */
export function SearchForm({ label, param = 'search', extra = null }) {
  const { query } = useLocation();
  const [value, setValue] = useState(query.get(param) ?? '');
  useEffect(() => setValue(query.get(param) ?? ''), [query.get(param)]);
  const submit = (event) => {
    event.preventDefault();
    setQuery({ [param]: value.trim(), page: undefined });
  };
  return html`<form class="toolbar" role="search" onSubmit=${submit}>
    <${Field} label=${label} type="search" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />
    ${extra}
    <button type="submit">Search</button>
  </form>`;
}

/**
 * The change preview: what a permission-changing action would do (its dry run), shown in a
 * modal dialog before the action is confirmed. `preview` is the API's dry-run answer.
 */
export function PreviewDialog({ title, preview, error, onConfirm, onCancel, busy }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  const affected = preview?.affected ?? [];
  return html`<dialog ref=${ref} class="preview" aria-labelledby="preview-title" onCancel=${(e) => (e.preventDefault(), onCancel())}>
    <h2 id="preview-title">${title}</h2>
    <${ProblemView} error=${error} />
    ${preview
      ? html`<p>${preview.total_affected === 0 ? 'No one gains or loses a permission.' : `${preview.total_affected} ${preview.total_affected === 1 ? 'user gains or loses' : 'users gain or lose'} permissions:`}</p>
          ${affected.length
            ? html`<table>
                <caption>Who gains and who loses what</caption>
                <thead><tr><th scope="col">User</th><th scope="col">Gains</th><th scope="col">Loses</th></tr></thead>
                <tbody>${affected.map((a) => html`<tr key=${a.user_id}><td>${a.email}</td><td class="gain">${a.gained.join(', ') || '—'}</td><td class="loss">${a.lost.join(', ') || '—'}</td></tr>`)}</tbody>
              </table>`
            : null}
          ${preview.total_affected > affected.length ? html`<p>and ${preview.total_affected - affected.length} more.</p>` : null}`
      : error
        ? null
        : html`<p aria-busy="true">Computing the preview…</p>`}
    <div class="actions">
      <button type="button" class="primary" disabled=${!preview || busy} onClick=${onConfirm}>Apply the change</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
    </div>
  </dialog>`;
}

/**
 * Runs a permission-changing call as a dry run first: `request(dryRun)` performs it; the
 * dialog shows the dry run's answer, and Apply performs it for real.
 */
export function usePreview() {
  const [pending, setPending] = useState(null);
  const ask = (title, request, done) => {
    const state = { title, request, done, preview: null, error: null, busy: false };
    setPending(state);
    request(true).then(
      (preview) => setPending((p) => (p === state ? { ...state, preview } : p)),
      (error) => setPending((p) => (p === state ? { ...state, error } : p)),
    );
  };
  const dialog = pending
    ? html`<${PreviewDialog}
        title=${pending.title}
        preview=${pending.preview}
        error=${pending.error}
        busy=${pending.busy}
        onCancel=${() => setPending(null)}
        onConfirm=${async () => {
          setPending({ ...pending, busy: true });
          try {
            const result = await pending.request(false);
            setPending(null);
            pending.done?.(result);
          } catch (error) {
            setPending({ ...pending, busy: false, error });
          }
        }}
      />`
    : null;
  return { ask, dialog };
}

/**
 * A bar chart in SVG; `data`: [{ label, value }]. Time series stand (`horizontal` false),
 * categories lie with their labels. The numbers are also in a table for screen readers.
 */
export function BarChart({ title, data, horizontal = false }) {
  const max = Math.max(1, ...data.map((d) => d.value));
  const width = 640;
  const row = 22;
  const height = horizontal ? Math.max(row, data.length * row) : 140;
  const bar = Math.max(2, Math.floor(width / Math.max(1, data.length)) - 2);
  const bars = horizontal
    ? data.map((d, i) => {
        const w = Math.max(1, Math.round((d.value / max) * (width - 260)));
        return html`<g><text x="0" y=${i * row + 15}>${d.label}</text><rect x="200" y=${i * row + 3} width=${w} height=${row - 6}><title>${d.label}: ${d.value}</title></rect><text x=${206 + w} y=${i * row + 15}>${d.value}</text></g>`;
      })
    : data.map((d, i) => {
        const h = Math.round((d.value / max) * 120);
        return html`<rect x=${i * (bar + 2)} y=${130 - h} width=${bar} height=${h}><title>${d.label}: ${d.value}</title></rect>`;
      });
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <svg viewBox="0 0 ${width} ${height}" height=${height} role="img" aria-label=${title}>${bars}</svg>
    <details><summary>Numbers</summary>
      <table><caption>${title}</caption><thead><tr><th scope="col">When / what</th><th scope="col">Count</th></tr></thead>
      <tbody>${data.map((d) => html`<tr><td>${d.label}</td><td>${d.value}</td></tr>`)}</tbody></table>
    </details>
  </figure>`;
}

export const fmtDate = (value) => (value ? new Date(value).toLocaleString() : '—');
export const fullName = (u) => [u.first_name, u.last_name].filter(Boolean).join(' ') || '—';

/** Marks the time from an API answer to the rendered page (read by the browser tests). */
export function useRenderTiming(name, data) {
  useEffect(() => {
    if (data === undefined) return;
    requestAnimationFrame(() => {
      performance.mark(`${name}:rendered`);
      try {
        performance.measure(name, `${name}:api`, `${name}:rendered`);
      } catch {
        // no API mark: nothing to measure
      }
    });
  }, [data]);
}
