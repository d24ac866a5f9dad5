// Settings as a typed form: each setting's control follows its type and constraints.
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, html, Loading, ProblemView, setQuery, useAction, useLoad, useLocation } from './ui.js';

async function allSettings(category) {
  const items = [];
  for (let page = 1; ; page++) {
    const answer = await t.get('/settings', { page, page_size: 100, sort: 'key', category: category || undefined });
    items.push(...answer.items);
    if (items.length >= answer.total || answer.items.length === 0) return items;
  }
}

export function SettingsPage() {
  const { query } = useLocation();
  const category = query.get('category') ?? '';
  const all = useLoad(() => allSettings(''), 'settings');
  // Which setting was saved last: its form is made again from the reloaded list, so the page keeps it.
  const [savedId, setSavedId] = useState(null);
  return html`<section aria-labelledby="settings-title">
    <h1 id="settings-title">Settings</h1>
    <${Loading} state=${all}>${(items) => {
      const categories = [...new Set(items.map((s) => s.category))].sort();
      const shown = items.filter((s) => !category || s.category === category);
      return html`
        <div class="toolbar">
          <${Field} label="Category" as="select" value=${category} onChange=${(e) => setQuery({ category: e.currentTarget.value })}>
            <option value="">All</option>${categories.map((c) => html`<option value=${c}>${c}</option>`)}
          <//>
        </div>
        ${shown.map((s) => html`<${SettingForm} key=${`${s.id}:${s.updated_at}`} setting=${s} saved=${savedId === s.id} onSaved=${() => (setSavedId(s.id), all.reload())} />`)}`;
    }}<//>
  </section>`;
}

function SettingForm({ setting, saved, onSaved }) {
  const v = setting.validation ?? {};
  const [value, setValueOnly] = useState(setting.type === 'json' ? JSON.stringify(setting.value, null, 2) : setting.value);
  const [edited, setEdited] = useState(false);
  const setValue = (next) => (setValueOnly(next), setEdited(true));
  const action = useAction();
  const save = (event) => {
    event.preventDefault();
    action.run(async () => {
      let typed = value;
      if (setting.type === 'number') typed = value === '' ? null : Number(value);
      if (setting.type === 'json') {
        try {
          typed = JSON.parse(value);
        } catch {
          throw new Error('The value is not valid JSON.');
        }
      }
      // The list carries no versions: the setting is read again, and saved only if nobody changed it meanwhile.
      const current = await t.get(`/settings/${setting.id}`);
      if (JSON.stringify(current.value) !== JSON.stringify(setting.value)) {
        throw new Error(`${setting.key} was changed since this page loaded (it is now ${JSON.stringify(current.value)}): reload the page to see it, then try again.`);
      }
      await t.put(`/settings/${setting.id}`, { value: typed }, undefined, { 'if-match': current.$etag });
      onSaved();
    });
  };
  const label = setting.key;
  let control;
  if (setting.type === 'boolean') control = html`<label class="check"><input type="checkbox" checked=${value === true} onChange=${(e) => setValue(e.currentTarget.checked)} /> ${label}</label>`;
  else if (Array.isArray(v.allowed)) control = html`<${Field} label=${label} as="select" value=${value} onChange=${(e) => setValue(e.currentTarget.value)}>${v.allowed.map((a) => html`<option value=${a}>${a}</option>`)}<//>`;
  else if (setting.type === 'number') control = html`<${Field} label=${label} type="number" min=${v.min} max=${v.max} step=${v.integer ? 1 : 'any'} value=${value ?? ''} onInput=${(e) => setValue(e.currentTarget.value)} />`;
  else if (setting.type === 'json') control = html`<${Field} label=${label} as="textarea" rows="4" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />`;
  else control = html`<${Field} label=${label} value=${value ?? ''} onInput=${(e) => setValue(e.currentTarget.value)} />`;
  return html`<form class="card setting" onSubmit=${save} aria-label=${`Setting ${setting.key}`}>
    ${control}
    <p class="hint">${setting.description ?? ''}${v.min !== undefined ? ` (${v.min}–${v.max ?? '…'})` : ''}</p>
    <${ProblemView} error=${action.error} />
    <button type="submit" disabled=${action.busy}>Save ${setting.key}</button>
    ${saved && !edited ? html`<span role="status">Saved.</span>` : null}
  </form>`;
}
