import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/audit.js';
import type { AccountPage, LinkTokens } from '../auth/account-tokens.js';
import type { AuthService } from '../auth/service.js';
import { authRateLimit, type TenantAuthDeps } from '../auth/tenant-hook.js';
import type { ErrorCode } from '../error-codes.js';
import { DomainError, text } from '../errors.js';
import { actorFrom } from '../http/context.js';
import { crossSite } from '../http/edge.js';
import { pageLocale } from '../http/locale.js';
import { loggedProblem, problemBody } from '../http/problem.js';
import { supportedLocale, type Locale } from '../i18n/index.js';
import { displayName, type PolicyReader } from '../settings/policy.js';
import type { TenantContext, TenantDirectory } from '../tenancy/directory.js';
import { donePage, errorPage, FORM_FIELDS, formPage, type FormField, type FormState, type PageKind, type PageView, type RenderedPage } from './page.js';

export interface AccountPagesDeps extends Pick<TenantAuthDeps, 'cache' | 'authRateLimitPerMinute'> {
  readonly directory: TenantDirectory;
  readonly policies: PolicyReader;
  readonly auth: Pick<AuthService, 'confirmPasswordReset' | 'verifyEmail' | 'linkUsable'>;
  /** PUBLIC_URL: its origin may send the pages' forms (besides the origin a request was addressed to). */
  readonly publicUrl?: string;
}

interface PageRoute {
  readonly path: AccountPage;
  readonly kind: PageKind;
  readonly password: boolean;
  /** Where its link's token is kept. */
  readonly tokens: LinkTokens;
  /** What the form does: the service call the REST route of the same action makes. */
  readonly act: (auth: AccountPagesDeps['auth'], tenant: TenantContext, token: string, newPassword: string, actor: AuditActor) => Promise<void>;
}

const setPassword: PageRoute['act'] = (auth, tenant, token, newPassword, actor) => auth.confirmPasswordReset(tenant, token, newPassword, actor);

/** An invitation is a reset token for a user without a password: the same confirmation activates the account. */
const PAGES: readonly PageRoute[] = [
  { path: 'reset-password', kind: 'reset', password: true, tokens: 'password_reset_tokens', act: setPassword },
  { path: 'accept-invitation', kind: 'invite', password: true, tokens: 'password_reset_tokens', act: setPassword },
  { path: 'verify-email', kind: 'verify', password: false, tokens: 'email_verification_tokens', act: (auth, tenant, token, _password, actor) => auth.verifyEmail(tenant, token, actor) },
];

/** Refusals that mean the link itself is no good: the page says so, and how to get a new one. */
const LINK_REFUSALS: ReadonlySet<ErrorCode> = new Set(['auth.invalid_link_token', 'tenant.not_found']);

const FORM_LIMIT_BYTES = 16_384;
const MAX_TOKEN_LENGTH = 512;

/** The pages set these on every answer; a rendered page then names its own stylesheet (and logo) in its policy. */
const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

/** A query or form value: the first when repeated, undefined when absent or not text. */
function one(value: unknown): string | undefined {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

const fieldsOf = (value: unknown): Record<string, unknown> => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {});

function send(reply: FastifyReply, status: number, page: RenderedPage): FastifyReply {
  return reply.status(status).header('content-security-policy', page.csp).type('text/html; charset=utf-8').send(page.html);
}

/**
 * `GET|POST /reset-password`, `/verify-email`, `/accept-invitation`: the pages the mailed links
 * open (docs/AUTH.md, Account pages). Server-rendered HTML, a plain form posting to the page
 * itself, no script; the token in the link is the form's secret.
 */
export function accountPageRoutes(deps: AccountPagesDeps): FastifyPluginAsync {
  const rateLimit = authRateLimit(deps);

  /** The tenant and token a link names; request.tenant is set as soon as the tenant is known (its default language, its branding). */
  async function linkOf(request: FastifyRequest, source: Record<string, unknown>): Promise<{ tenant: TenantContext; slug: string; token: string }> {
    const slug = one(source.tenant);
    if (!slug) throw DomainError.notFound('tenant');
    const tenant = await deps.directory.resolve(slug);
    request.tenant = tenant;
    const token = one(source.token);
    if (!token || token.length > MAX_TOKEN_LENGTH) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
    return { tenant, slug, token };
  }

  async function viewOf(kind: PageKind, tenant: TenantContext | null, locale: Locale): Promise<PageView> {
    const policy = tenant ? await deps.policies.policy(tenant) : null;
    return { kind, locale, product: tenant && policy ? displayName(tenant, policy) : null, branding: policy?.branding ?? null };
  }

  return async (app) => {
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(PAGE_HEADERS);
      done();
    });
    // An HTML form posts application/x-www-form-urlencoded; a repeated name keeps its last value.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    // Whatever goes wrong is a page too: the problem's translated title and detail, with its status.
    app.setErrorHandler(async (error, request, reply) => {
      const problem = loggedProblem(request, error);
      const route = PAGES.find((p) => request.routeOptions.url === `/${p.path}`) ?? PAGES[0]!;
      const lang = one(fieldsOf(request.query).lang) ?? one(fieldsOf(request.body).lang);
      const locale = await pageLocale(request, reply, lang);
      const body = problemBody(problem, request.id, locale);
      const view = await viewOf(route.kind, request.tenant, locale).catch(() => viewOf(route.kind, null, locale));
      return send(reply, body.status, errorPage(view, { title: body.title, detail: body.detail, linkInvalid: LINK_REFUSALS.has(problem.code) }));
    });

    for (const route of PAGES) {
      /** The form of this page for this link, in the reader's language; with a refusal, its reasons beside the fields. */
      async function form(request: FastifyRequest, reply: FastifyReply, source: Record<string, unknown>) {
        const link = await linkOf(request, source);
        const chosen = supportedLocale(one(source.lang));
        const locale = await pageLocale(request, reply, chosen);
        const view = await viewOf(route.kind, link.tenant, locale);
        const { password } = await deps.policies.policy(link.tenant);
        const state: FormState = { action: route.path, tenant: link.slug, token: link.token, lang: chosen, password: route.password ? password : null };
        return { link, locale, view, state };
      }

      app.get(`/${route.path}`, { schema: { hide: true } }, async (request, reply) => {
        await rateLimit(request, reply);
        const { link, view, state } = await form(request, reply, fieldsOf(request.query));
        // A used, expired or unknown link says so at once (the error page), rather than after the form is filled in.
        if (!(await deps.auth.linkUsable(link.tenant, route.tokens, link.token))) throw DomainError.invalid('token', text('reason.link_token'), 'auth.invalid_link_token');
        return send(reply, 200, formPage(view, state));
      });

      app.post(`/${route.path}`, { schema: { hide: true } }, async (request, reply) => {
        if (crossSite(request, deps.publicUrl)) throw new DomainError('request.cross_site');
        await rateLimit(request, reply);
        const fields = fieldsOf(request.body);
        const { link, locale, view, state } = await form(request, reply, fields);
        const newPassword = one(fields.new_password) ?? '';
        try {
          if (route.password && newPassword !== (one(fields.new_password_repeat) ?? '')) throw DomainError.invalid('new_password_repeat', text('reason.passwords_differ'));
          await route.act(deps.auth, link.tenant, link.token, newPassword, actorFrom(request));
        } catch (error) {
          // A refusal of what was typed shows the form again; any other (the link) goes to the error page.
          if (!(error instanceof DomainError) || error.errors.length === 0 || !error.errors.every((e) => (FORM_FIELDS as readonly string[]).includes(e.field))) throw error;
          const problem = problemBody(loggedProblem(request, error), request.id, locale);
          const refusal = { title: problem.title, fields: new Map((problem.errors ?? []).map((e) => [e.field as FormField, e.reason])) };
          return send(reply, problem.status, formPage(view, { ...state, refusal }));
        }
        return send(reply, 200, donePage(view));
      });
    }
  };
}
