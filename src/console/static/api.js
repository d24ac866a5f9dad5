// The console's only door to the service: the public REST API, with the access token in memory.
// A tenant session's refresh token stays in its HttpOnly cookie (auth/session); an operator's
// system token lives in this module only, so a reload asks for it again.

/** @typedef {{ kind: 'tenant', slug: string, token: string, expiresAt: number, user: any } | { kind: 'operator', token: string }} Session */

/** @type {Session | null} */
let session = null;
/** @type {Promise<boolean> | null} */
let refreshing = null;

export class Problem extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
    /** @type {{ field: string, reason?: string, message?: string }[]} */
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
    this.code = body?.code;
  }
}

export const currentSession = () => session;
export const tenantBase = (slug) => `/api/v1/tenants/${encodeURIComponent(slug)}`;

/** @param {string} slug @param {any} answer */
function keepTenantSession(slug, answer, user) {
  session = { kind: 'tenant', slug, token: answer.access_token, expiresAt: Date.now() + (answer.expires_in - 15) * 1000, user: user ?? (session?.kind === 'tenant' ? session.user : null) };
}

/**
 * Signs in to a tenant: `{ user }`, or the second step the tenant asks for first:
 * `{ step: 'mfa' | 'enrol', token }` (finish with verifySecondFactor or the enrolment calls).
 */
export async function signIn(slug, login, password) {
  const body = login.includes('@') ? { email: login, password } : { username: login, password };
  const answer = await send('POST', `${tenantBase(slug)}/auth/session`, { body, anonymous: true });
  if (answer.mfa_required) return { step: 'mfa', token: answer.mfa_token, methods: answer.methods };
  if (answer.mfa_enrolment_required) return { step: 'enrol', token: answer.mfa_token };
  keepTenantSession(slug, answer, answer.user);
  return { user: answer.user };
}

/** The second factor of a sign-in: a TOTP code or a recovery code. */
export async function verifySecondFactor(slug, mfaToken, code) {
  const answer = await send('POST', `${tenantBase(slug)}/auth/session/mfa/verify`, { body: { mfa_token: mfaToken, code }, anonymous: true });
  keepTenantSession(slug, answer, answer.user);
  return answer.user;
}

/** The second factor of a sign-in with a passkey: the options for its mfa_token, signed by `sign`. */
export async function verifyWithPasskey(slug, mfaToken, sign) {
  const options = await send('POST', `${tenantBase(slug)}/auth/mfa/passkey-options`, { body: { mfa_token: mfaToken }, anonymous: true });
  const answer = await send('POST', `${tenantBase(slug)}/auth/session/mfa/verify`, { body: { mfa_token: mfaToken, webauthn: await sign(options) }, anonymous: true });
  keepTenantSession(slug, answer, answer.user);
  return answer.user;
}

/** Passwordless sign-in: `sign` turns the API's options into a passkey's assertion; the user. */
export async function signInWithPasskey(slug, sign) {
  const options = await send('POST', `${tenantBase(slug)}/auth/passkey/options`, { body: {}, anonymous: true });
  const answer = await send('POST', `${tenantBase(slug)}/auth/session/passkey`, { body: { webauthn: await sign(options) }, anonymous: true });
  keepTenantSession(slug, answer, answer.user);
  return answer.user;
}

/** A forced enrolment's TOTP secret: `{ secret, otpauth_url }`. */
export const startEnrolment = (slug, mfaToken) => send('POST', `${tenantBase(slug)}/auth/mfa/totp`, { body: { mfa_token: mfaToken }, anonymous: true });

/** Finishes a forced enrolment with a new passkey (`create` makes it from the API's options) and signs in; answers the recovery codes. */
export async function enrolWithPasskey(slug, mfaToken, create) {
  const options = await send('POST', `${tenantBase(slug)}/auth/mfa/passkeys/registration-options`, { body: { mfa_token: mfaToken }, anonymous: true });
  const answer = await send('POST', `${tenantBase(slug)}/auth/session/mfa/passkeys`, { body: { mfa_token: mfaToken, response: await create(options) }, anonymous: true });
  keepTenantSession(slug, answer, answer.user);
  return answer.recovery_codes;
}

/** Finishes a forced enrolment with its first code and signs in; answers the recovery codes (shown once). */
export async function confirmEnrolment(slug, mfaToken, code) {
  const answer = await send('POST', `${tenantBase(slug)}/auth/session/mfa/totp/confirm`, { body: { mfa_token: mfaToken, code }, anonymous: true });
  keepTenantSession(slug, answer, answer.user);
  return answer.recovery_codes;
}

/** Resumes the tenant's browser session from its cookie; false when there is none. */
export async function resume(slug) {
  if (session?.kind === 'tenant' && session.slug === slug && session.expiresAt > Date.now()) return true;
  refreshing ??= (async () => {
    try {
      const answer = await send('POST', `${tenantBase(slug)}/auth/session/refresh`, { anonymous: true });
      keepTenantSession(slug, answer, session?.kind === 'tenant' && session.slug === slug ? session.user : null);
      if (!session || session.kind !== 'tenant' || !session.user) {
        const me = await send('GET', `${tenantBase(slug)}/me`);
        if (session?.kind === 'tenant') session.user = me;
      }
      return true;
    } catch {
      session = null;
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** An operator signs in with a system token (`npm run cli -- token system`), checked by listing tenants. */
export async function operatorSignIn(token) {
  session = { kind: 'operator', token: token.trim() };
  try {
    await send('GET', '/api/v1/tenants', { query: { page_size: 1 } });
  } catch (error) {
    session = null;
    throw error;
  }
}

export async function signOut() {
  if (session?.kind === 'tenant') {
    const slug = session.slug;
    try {
      if (session.expiresAt <= Date.now()) await resume(slug);
      await send('DELETE', `${tenantBase(slug)}/auth/session`);
    } catch {
      // The session may already have ended; the cookie expires with it.
    }
  }
  session = null;
}

/**
 * One API call: JSON in and out, problem details thrown as Problem. A tenant call whose
 * access token expired refreshes it once from the cookie.
 * @param {string} method @param {string} path
 * @param {{ query?: Record<string, any>, body?: any, headers?: Record<string,string>, anonymous?: boolean, raw?: boolean }} [options]
 */
export async function send(method, path, options = {}) {
  if (!options.anonymous && session?.kind === 'tenant' && session.expiresAt <= Date.now()) await resume(session.slug);
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  const headers = { accept: 'application/json, application/problem+json', ...options.headers };
  if (!options.anonymous && session) headers.authorization = `Bearer ${session.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body), credentials: 'same-origin' });
  if (res.status === 401 && !options.anonymous && session?.kind === 'tenant' && (await resume(session.slug))) {
    return send(method, path, { ...options, anonymous: false });
  }
  if (options.raw && res.ok) return res;
  const text = res.status === 204 ? '' : await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  if (!res.ok) throw new Problem(res.status, body);
  if (res.headers.get('etag') && body && typeof body === 'object') Object.defineProperty(body, '$etag', { value: res.headers.get('etag') });
  return body;
}

/** Shortcuts for the signed-in tenant. */
export const t = {
  get: (path, query) => send('GET', `${tenantBase(session.slug)}${path}`, { query }),
  post: (path, body, query) => send('POST', `${tenantBase(session.slug)}${path}`, { body, query }),
  put: (path, body, query, headers) => send('PUT', `${tenantBase(session.slug)}${path}`, { body, query, headers }),
  patch: (path, body, query, headers) => send('PATCH', `${tenantBase(session.slug)}${path}`, { body, query, headers }),
  del: (path, query, headers, body) => send('DELETE', `${tenantBase(session.slug)}${path}`, { query, headers, body }),
};
