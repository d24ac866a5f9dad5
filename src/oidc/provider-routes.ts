import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import type Provider from 'oidc-provider';
import type { RenderedPage } from '../account/page.js';
import { isMfaStep, type AuthService, type LoginResult } from '../auth/service.js';
import { authRateLimit, type TenantAuthDeps } from '../auth/tenant-hook.js';
import { DomainError, text } from '../errors.js';
import type { AssertionJSON, RegistrationJSON } from '../auth/mfa/webauthn.js';
import { actorFrom, requireTenant } from '../http/context.js';
import { crossSite } from '../http/edge.js';
import { loggedProblem, problemBody } from '../http/problem.js';
import { Compile } from 'typebox/compile';
import { AuthenticationResponse, RegistrationResponse } from '../auth/mfa/schemas.js';
import type { MfaMethod, MfaStep } from '../auth/mfa/service.js';
import { consentPage, enrolPage, loginPage, mfaPage, oauthErrorPage, problemPage, recoveryCodesPage, type OidcPageView, type Refusal } from './pages.js';
import { loadOidcLibrary, mountPathOf, redirectTargets, withFormTargets, type OidcProviders, type SignInResult } from './provider.js';

export interface OidcProviderRoutesDeps extends Pick<TenantAuthDeps, 'cache' | 'authRateLimitPerMinute'> {
  readonly providers: OidcProviders;
  readonly auth: Pick<AuthService, 'login' | 'verifyMfa' | 'passkeyLogin' | 'startEnrolment' | 'confirmEnrolment' | 'confirmPasskeyEnrolment'>;
}

/** The provider's own REST neighbours under `oidc/`: never handed to the provider. */
const REST_PATHS = /^\/(clients|signing-keys)(\/|\?|$)/;
const MOUNT = /^\/api\/v1\/tenants\/[^/?]+\/oidc(?=\/|\?|$)/;
const FORM_LIMIT_BYTES = 16_384;

/** The pages set these on every answer; a rendered page then names its own stylesheet in its policy. */
const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const one = (value: unknown): string | undefined => {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
};
const assertionOf = Compile(AuthenticationResponse);
const registrationOf = Compile(RegistrationResponse);
/** A passkey ceremony's JSON as a page's script posted it, checked as the API checks it; `refusal` when it is not one. */
function ceremony<T>(validator: { Check(value: unknown): boolean }, field: unknown, refusal: DomainError): T {
  const text = one(field);
  let value: unknown;
  try {
    value = text ? JSON.parse(text) : undefined;
  } catch {
    throw refusal;
  }
  if (!validator.Check(value)) throw refusal;
  return value as T;
}

const emailOf = (fields: Record<string, unknown>) => (one(fields.email) ?? '').slice(0, 320);
/** The user's methods, as the second step's form carries them round (only to offer the same ways again). */
const methodsOf = (fields: Record<string, unknown>) => (one(fields.methods) ?? '').split(',').filter((m): m is MfaMethod => ['totp', 'webauthn', 'recovery_code'].includes(m));
const fieldsOf = (value: unknown): Record<string, unknown> => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {});

function send(reply: FastifyReply, status: number, page: RenderedPage): FastifyReply {
  return reply.status(status).headers(PAGE_HEADERS).header('content-security-policy', page.csp).type('text/html; charset=utf-8').send(page.html);
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * The tenant's OpenID Connect provider under `.../oidc` (docs/OIDC.md): a hidden catch-all
 * that hands the raw request to oidc-provider (its own body parsing, its OAuth errors), and
 * the interaction pages it sends browsers to: sign-in, second factor, consent.
 */
export function oidcProviderRoutes(deps: OidcProviderRoutesDeps): FastifyPluginAsync {
  const rateLimit = authRateLimit(deps);
  // PUBLIC_URL: the host and protocol every provider URL is built with; its origin may post the pages' forms.
  const publicUrl = new URL(deps.providers.publicUrl);
  const callbacks = new WeakMap<Provider, Handler>();
  const callbackOf = (provider: Provider) => {
    let handler = callbacks.get(provider);
    if (!handler) callbacks.set(provider, (handler = provider.callback() as unknown as Handler));
    return handler;
  };

  /** Hands the request to the tenant's provider, the mount path stripped and the public host and protocol set, before Fastify reads its body. */
  async function handOver(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const tenant = requireTenant(request);
    const raw = request.raw as IncomingMessage & { originalUrl?: string };
    const url = raw.url ?? '/';
    const rest = url.replace(MOUNT, '') || '/';
    if (REST_PATHS.test(rest)) throw new DomainError('route.not_found');
    const provider = await deps.providers.get(tenant);
    reply.hijack();
    raw.originalUrl = mountPathOf(tenant.slug) + rest;
    raw.url = rest;
    raw.headers['x-forwarded-host'] = publicUrl.host;
    raw.headers['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1);
    raw.headers['x-forwarded-for'] = request.ip;
    reply.raw.setHeader('x-request-id', request.id);
    await callbackOf(provider)(raw, reply.raw);
  }

  /** The interaction this browser is in (its cookie), for this uid, with the page's words and look. */
  async function interaction(request: FastifyRequest<{ Params: { uid: string } }>, reply: FastifyReply) {
    const tenant = requireTenant(request);
    const provider = await deps.providers.get(tenant);
    const details = await provider.interactionDetails(request.raw, reply.raw);
    if (details.uid !== request.params.uid) throw new (await loadOidcLibrary()).errors.SessionNotFound('interaction mismatch');
    const clientId = one(details.params.client_id) ?? '';
    const client = clientId ? await provider.Client.find(clientId) : undefined;
    const view = await deps.providers.view(tenant, request.headers['accept-language'], client ? (client.clientName ?? client.clientId) : '');
    const base = `${mountPathOf(tenant.slug)}/interaction/${details.uid}`;
    // The forms' posts end in redirects to the client: its redirect URIs' origins are allowed targets.
    const targets = redirectTargets(client?.redirectUris ?? []);
    const show = (status: number, page: RenderedPage) => send(reply, status, withFormTargets(page, targets));
    // The passkey buttons ask the tenant's public API for their options, then post here.
    const api = mountPathOf(tenant.slug).replace(/\/oidc$/, '');
    /** The sign-in form (an email kept, a refusal shown), with a passwordless passkey unless the tenant has factors off. */
    const login = (status: number, email = '', refusal?: Refusal) =>
      show(status, loginPage(view, { action: `${base}/login`, email, refusal, passkey: view.mfa === 'off' ? undefined : { options: `${api}/auth/passkey/options`, action: `${base}/passkey` } }));
    /** The second step's form, offering the user's passkey when they have one. */
    const secondFactor = (status: number, mfaToken: string, methods: readonly string[], refusal?: Refusal) =>
      show(status, mfaPage(view, { action: `${base}/mfa`, mfaToken, methods, refusal, passkey: methods.includes('webauthn') ? { options: `${api}/auth/mfa/passkey-options`, action: `${base}/mfa` } : undefined }));
    /** The forced enrolment's form: the TOTP key pending for the `mfa_token`'s user (started now if none; never taken from the form), or a passkey. */
    const enrolment = async (status: number, mfaToken: string, refusal?: Refusal) => {
      const totp = await deps.auth.startEnrolment(tenant, mfaToken, actorFrom(request), true);
      const passkey = { options: `${api}/auth/mfa/passkeys/registration-options`, action: `${base}/enrol` };
      return show(status, enrolPage(view, { action: `${base}/enrol`, mfaToken, totp: { secret: totp.secret, otpauthUrl: totp.otpauth_url }, refusal, passkey }));
    };
    return { tenant, provider, details, view, base, show, login, secondFactor, enrolment };
  }

  /** Whatever stops a page: an OAuth error (an expired interaction) or a problem, as a page in the reader's language. */
  async function failed(request: FastifyRequest, reply: FastifyReply, error: unknown): Promise<FastifyReply> {
    const { errors: oidcErrors } = await loadOidcLibrary();
    const tenant = request.tenant;
    const view: OidcPageView = tenant ? await deps.providers.view(tenant, request.headers['accept-language'], '') : { locale: 'en', product: '', branding: null, client: '', mfa: 'off' };
    if (error instanceof oidcErrors.OIDCProviderError) {
      request.log.info({ code: error.error, detail: error.error_detail }, 'interaction refused');
      return send(reply, error.statusCode, oauthErrorPage(view, { error: error.error, error_description: error.error_description }));
    }
    const body = problemBody(loggedProblem(request, error), request.id, view.locale);
    return send(reply, body.status, problemPage(view, { title: body.title, detail: body.detail }));
  }

  /** A refusal of what was typed, in the reader's language, with its status; anything else (a server error) is thrown on. */
  const refusalOf = (request: FastifyRequest, error: unknown, view: OidcPageView): { status: number; refusal: Refusal; code: string } => {
    if (!(error instanceof DomainError)) throw error;
    const body = problemBody(loggedProblem(request, error), request.id, view.locale);
    if (body.status >= 500) throw error;
    return { status: body.status, refusal: { title: body.title, detail: body.detail }, code: error.code };
  };

  /** A sign-in form's post: from this site, within the rate limit, while a sign-in is pending; its interaction and fields. */
  async function signInForm(request: FastifyRequest<{ Params: { uid: string } }>, reply: FastifyReply) {
    await formGuard(request, reply);
    const context = await interaction(request, reply);
    if (context.details.prompt.name !== 'login') throw new (await loadOidcLibrary()).errors.InvalidRequest('no sign-in is pending');
    return { ...context, request, fields: fieldsOf(request.body) };
  }

  /** The sign-in is done: the interaction's result names the user and the service session it opened; where the browser goes back to the provider. */
  async function finish(request: FastifyRequest, reply: FastifyReply, provider: Provider, result: LoginResult, amr: string[]): Promise<string> {
    const sessionId = decodeJwt(result.access_token).sid as string;
    const outcome: SignInResult = { login: { accountId: result.user.id, amr, remember: true }, service_session: sessionId };
    return provider.interactionResult(request.raw, reply.raw, { ...outcome }, { mergeWithLastSubmission: false });
  }
  async function signedIn(request: FastifyRequest, reply: FastifyReply, provider: Provider, result: LoginResult, amr: string[]) {
    return reply.redirect(await finish(request, reply, provider, result, amr), 303);
  }

  type SignInContext = Awaited<ReturnType<typeof signInForm>>;
  /** The step a password sign-in answered: the second factor, or the forced enrolment. */
  const nextStep = (context: SignInContext, step: MfaStep) =>
    'mfa_required' in step ? context.secondFactor(200, step.mfa_token, step.methods) : context.enrolment(200, step.mfa_token);

  /** Forms post back to the page that showed them, from this site only, within the authentication rate limit. */
  async function formGuard(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (crossSite(request, publicUrl.href)) throw new DomainError('request.cross_site');
    await rateLimit(request, reply);
  }

  const page = { config: { access: 'public' as const }, schema: { hide: true } };

  return async (app) => {
    const { errors: oidcErrors } = await loadOidcLibrary();
    // An HTML form posts application/x-www-form-urlencoded; a repeated name keeps its last value.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    app.get<{ Params: { uid: string } }>('/oidc/interaction/:uid', page, async (request, reply) => {
      try {
        const context = await interaction(request, reply);
        const { details, view, base, show } = context;
        if (details.prompt.name === 'login') return context.login(200, one(details.params.login_hint) ?? '');
        if (details.prompt.name === 'consent') {
          const scopes = (one(details.params.scope) ?? '').split(' ');
          return show(200, consentPage(view, { allow: `${base}/consent`, deny: `${base}/abort`, scopes }));
        }
        throw new oidcErrors.InvalidRequest(`unsupported prompt ${details.prompt.name}`);
      } catch (error) {
        return failed(request, reply, error);
      }
    });

    /**
     * A sign-in form's post (`path`): `act` on its fields; a refusal of what was typed shows
     * `again`'s page (with the refusal and its code), anything else the page of `failed`.
     */
    const signInStep = (
      path: string,
      act: (context: SignInContext, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>,
      again: (context: SignInContext, status: number, refusal: Refusal, code: string) => Promise<FastifyReply> | FastifyReply,
    ) =>
      app.post<{ Params: { uid: string } }>(`/oidc/interaction/:uid/${path}`, page, async (request, reply) => {
        try {
          const context = await signInForm(request, reply);
          try {
            return await act(context, request, reply);
          } catch (error) {
            const { status, refusal, code } = refusalOf(request, error, context.view);
            // A void token cannot be tried again: the sign-in starts over.
            return await (code === 'auth.mfa_token_invalid' ? context.login(status, '', refusal) : again(context, status, refusal, code));
          }
        } catch (error) {
          return failed(request, reply, error);
        }
      });

    // The same login as POST auth/login: lockout, audit and the second factor apply.
    signInStep(
      'login',
      async (context, request, reply) => {
        const answer = await deps.auth.login(context.tenant, { email: emailOf(context.fields), password: one(context.fields.password) ?? '' }, actorFrom(request));
        return isMfaStep(answer) ? nextStep(context, answer) : signedIn(request, reply, context.provider, answer, ['pwd']);
      },
      (context, status, refusal) => context.login(status, emailOf(context.fields), refusal),
    );

    // The same passwordless sign-in as POST auth/passkey/login.
    signInStep(
      'passkey',
      async (context, request, reply) => {
        const webauthn = ceremony<AssertionJSON>(assertionOf, context.fields.webauthn, new DomainError('auth.passkey_failed'));
        return signedIn(request, reply, context.provider, await deps.auth.passkeyLogin(context.tenant, { webauthn }, actorFrom(request)), ['hwk', 'user']);
      },
      (context, status, refusal) => context.login(status, '', refusal),
    );

    // The same second step as POST auth/mfa/verify: a code of the app, a recovery code, or a passkey's assertion.
    signInStep(
      'mfa',
      async (context, request, reply) => {
        const { fields } = context;
        const mfaToken = one(fields.mfa_token) ?? '';
        const factor = fields.webauthn !== undefined ? { webauthn: ceremony<AssertionJSON>(assertionOf, fields.webauthn, new DomainError('auth.mfa_failed')) } : { code: (one(fields.code) ?? '').slice(0, 64) };
        const result = await deps.auth.verifyMfa(context.tenant, { mfa_token: mfaToken, ...factor }, actorFrom(request));
        return signedIn(request, reply, context.provider, result, ['pwd', 'webauthn' in factor ? 'hwk' : 'otp']);
      },
      (context, status, refusal) => context.secondFactor(status, one(context.fields.mfa_token) ?? '', methodsOf(context.fields), refusal),
    );

    // The same forced enrolment as POST auth/mfa/totp/confirm or auth/mfa/passkeys: the login finishes, with ten recovery codes to keep.
    signInStep(
      'enrol',
      async (context, request, reply) => {
        const { tenant, fields } = context;
        const mfaToken = one(fields.mfa_token) ?? '';
        const response = fields.passkey !== undefined ? ceremony<RegistrationJSON>(registrationOf, fields.passkey, DomainError.invalid('response', text('reason.passkey_response'), 'mfa.passkey_invalid')) : undefined;
        const result = response
          ? await deps.auth.confirmPasskeyEnrolment(tenant, { mfa_token: mfaToken, response }, actorFrom(request))
          : await deps.auth.confirmEnrolment(tenant, { mfa_token: mfaToken, code: (one(fields.code) ?? '').slice(0, 64) }, actorFrom(request));
        const next = await finish(request, reply, context.provider, result, response ? ['pwd', 'hwk'] : ['pwd', 'otp']);
        return context.show(200, recoveryCodesPage(context.view, result.recovery_codes, next));
      },
      async (context, status, refusal) => {
        try {
          return await context.enrolment(status, one(context.fields.mfa_token) ?? '', refusal);
        } catch (again) {
          // The step's token was voided by this failure (its last attempt): the sign-in starts over.
          return context.login(status, '', refusalOf(context.request, again, context.view).refusal);
        }
      },
    );

    app.post<{ Params: { uid: string } }>('/oidc/interaction/:uid/consent', page, async (request, reply) => {
      try {
        if (crossSite(request, publicUrl.href)) throw new DomainError('request.cross_site');
        const { provider, details } = await interaction(request, reply);
        if (details.prompt.name !== 'consent' || !details.session?.accountId) throw new oidcErrors.InvalidRequest('no consent is pending');
        const clientId = one(details.params.client_id) ?? '';
        const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId: details.session.accountId, clientId });
        const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
        const grantId = await grant.save();
        // The grant is remembered per client: the next sign-in with the same scopes asks no more.
        const returnTo = await provider.interactionResult(request.raw, reply.raw, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
        return await reply.redirect(returnTo, 303);
      } catch (error) {
        return failed(request, reply, error);
      }
    });

    app.post<{ Params: { uid: string } }>('/oidc/interaction/:uid/abort', page, async (request, reply) => {
      try {
        if (crossSite(request, publicUrl.href)) throw new DomainError('request.cross_site');
        const { provider } = await interaction(request, reply);
        const returnTo = await provider.interactionResult(request.raw, reply.raw, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
        return await reply.redirect(returnTo, 303);
      } catch (error) {
        return failed(request, reply, error);
      }
    });

    // Everything else under the issuer is the provider's: discovery, authorize, token, userinfo, JWKS, revocation, end_session.
    app.route({ method: ['GET', 'POST', 'OPTIONS'], url: '/oidc/*', ...page, onRequest: handOver, handler: async () => undefined });
  };
}
