// Your own sign-in: passkeys (add, remove), the authenticator app's state, recovery codes left.
/* global PublicKeyCredential */
import { useState } from './preact.js';
import { t } from './api.js';
import { Field, html, Loading, ProblemView, useAction, useLoad } from './ui.js';

/** Whether this browser takes WebAuthn options as JSON (the API's shape). */
export const passkeysSupported = () =>
  typeof PublicKeyCredential !== 'undefined' && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';

/** Signs `options` (the API's request options) with a passkey of this device: the assertion as JSON. */
export async function passkeyAssertion(options) {
  const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  if (!credential) throw new Error('No passkey was used.');
  return credential.toJSON();
}

/** Makes a passkey on this device for `options` (the API's creation options): the registration response as JSON. */
export async function passkeyCreation(options) {
  const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
  if (!credential) throw new Error('No passkey was made.');
  return credential.toJSON();
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : 'never');

export function SecurityPage() {
  const status = useLoad(() => t.get('/me/mfa'), 'me/mfa');
  return html`<section aria-labelledby="security-title">
    <h1 id="security-title">Your sign-in</h1>
    <${Loading} state=${status}>${(s) => html`
      <p>Second factor for this tenant: <strong>${s.mode}</strong>. Authenticator app: <strong>${s.totp.status === 'active' ? 'on' : 'off'}</strong>. Recovery codes left: <strong>${s.recovery_codes_remaining}</strong>.</p>
      <h2 id="passkeys-title">Passkeys</h2>
      ${s.passkeys.length === 0
        ? html`<p>No passkey yet.</p>`
        : html`<table aria-labelledby="passkeys-title">
            <thead><tr><th scope="col">Name</th><th scope="col">Added</th><th scope="col">Last used</th><th scope="col">Synced</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>${s.passkeys.map((p) => html`<${PasskeyRow} key=${p.id} passkey=${p} onRemoved=${status.reload} />`)}</tbody>
          </table>`}
      <${AddPasskey} onAdded=${status.reload} />`}<//>
  </section>`;
}

function AddPasskey({ onAdded }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [codes, setCodes] = useState(null);
  const action = useAction();
  if (!passkeysSupported()) return html`<p>This browser cannot make passkeys.</p>`;
  const add = (event) => {
    event.preventDefault();
    action.run(async () => {
      // A passkey signs in on its own: the password first, as the API asks.
      const response = await passkeyCreation(await t.post('/me/mfa/passkeys/registration-options', { password }));
      const answer = await t.post('/me/mfa/passkeys', { response, ...(name.trim() ? { name: name.trim() } : {}) });
      setName('');
      setPassword('');
      setCodes(answer.recovery_codes ?? null);
      onAdded();
    });
  };
  return html`<form onSubmit=${add} aria-labelledby="add-passkey-title">
    <h3 id="add-passkey-title">Add a passkey</h3>
    <${Field} label="Passkey name" value=${name} maxlength="100" hint="For example the device it is on" onInput=${(e) => setName(e.currentTarget.value)} />
    <${Field} label="Your password, to add a passkey" type="password" required autocomplete="current-password" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />
    <${ProblemView} error=${action.error} />
    <button type="submit" class="primary" disabled=${action.busy}>Add a passkey</button>
    ${codes &&
    html`<div role="status">
      <p>Your first second factor: these recovery codes each sign you in once instead of it. They are shown only now.</p>
      <ul class="codes" aria-label="Recovery codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
    </div>`}
  </form>`;
}

function PasskeyRow({ passkey, onRemoved }) {
  const [asking, setAsking] = useState(false);
  const [password, setPassword] = useState('');
  const action = useAction();
  const remove = (event) => {
    event.preventDefault();
    action.run(async () => {
      await t.del(`/me/mfa/passkeys/${passkey.id}`, undefined, undefined, { password });
      onRemoved();
    });
  };
  return html`<tr>
    <td>${passkey.name}</td>
    <td>${when(passkey.created_at)}</td>
    <td>${when(passkey.last_used_at)}</td>
    <td>${passkey.backed_up ? 'yes' : 'no'}</td>
    <td>
      ${asking
        ? html`<form onSubmit=${remove} class="inline">
            <${Field} label=${`Your password, to remove ${passkey.name}`} type="password" required autocomplete="current-password" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />
            <${ProblemView} error=${action.error} />
            <button type="submit" disabled=${action.busy}>Remove</button>
            <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
          </form>`
        : html`<button type="button" onClick=${() => setAsking(true)} aria-label=${`Remove ${passkey.name}`}>Remove</button>`}
    </td>
  </tr>`;
}
