import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { problems } from '../http/schemas.js';
import { actorFrom, requireSession, requireTenant } from '../http/context.js';
import { DomainError } from '../errors.js';
import { UserSchema } from '../users/view.js';
import { EnrolmentConfirmBody, EnrolmentPasskeyBody, MfaEnrolmentRequiredSchema, MfaRequiredSchema, MfaVerifyBody, PasskeyLoginBody, RecoveryCodesSchema } from './mfa/schemas.js';
import { LoginBody, TokenPairSchema } from './routes.js';
import { isMfaStep, type AuthService, type LoginResult } from './service.js';

/** The refresh token of a browser session: HttpOnly, so page scripts never hold it. */
export const SESSION_COOKIE = 'ss_refresh';

const { refresh_token: _refresh, ...AccessOnly } = TokenPairSchema.properties;
const AccessSchema = Type.Object(AccessOnly);
const BrowserLoginSchema = Type.Object({ ...AccessOnly, user: UserSchema });

function cookiePath(request: FastifyRequest): string {
  return `/api/v1/tenants/${encodeURIComponent(requireTenant(request).slug)}/auth/session`;
}

function setCookie(request: FastifyRequest, reply: FastifyReply, value: string, maxAge?: number): void {
  const parts = [`${SESSION_COOKIE}=${value}`, `Path=${cookiePath(request)}`, 'HttpOnly', 'Secure', 'SameSite=Strict'];
  if (maxAge !== undefined) parts.push(`Max-Age=${maxAge}`);
  reply.header('set-cookie', parts.join('; '));
}

/** A forced enrolment's last step: the login's answer with the new recovery codes. */
const BrowserEnrolledSchema = Type.Object({ ...BrowserLoginSchema.properties, ...RecoveryCodesSchema.properties });

/** The session cookie's value, if the request carries one. */
export function sessionCookie(request: FastifyRequest): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return decodeURIComponent(part.slice(eq + 1).trim()) || undefined;
  }
  return undefined;
}

/** A finished browser login: the refresh token goes into the cookie, the rest into the answer. */
function withCookie<T extends LoginResult>(request: FastifyRequest, reply: FastifyReply, result: T): Omit<T, 'refresh_token'> {
  const { refresh_token, ...answer } = result;
  setCookie(request, reply, refresh_token);
  return answer;
}

/**
 * `/api/v1/tenants/{tenant_slug}/auth/session`: sign-in for browser front ends (the console, a
 * tenant's own app). The same login and refresh as `auth/login` and `auth/refresh`, with the
 * refresh token kept in a cookie scoped to this path instead of the answer.
 */
export function sessionRoutes(auth: AuthService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/auth/session',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: 'Log in from a browser: the access token in the answer, the refresh token in an HttpOnly cookie for auth/session/refresh',
          body: LoginBody,
          response: { 200: Type.Union([BrowserLoginSchema, MfaRequiredSchema, MfaEnrolmentRequiredSchema]), ...problems(400, 401, 403, 404, 429) },
        },
      },
      async (request, reply) => {
        const answer = await auth.login(requireTenant(request), request.body, actorFrom(request));
        // A second step first: no session yet, so no cookie (auth/session/mfa/verify sets it).
        return isMfaStep(answer) ? answer : withCookie(request, reply, answer);
      },
    );

    app.post(
      '/auth/session/passkey',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: 'Passwordless sign-in from a browser: a passkey assertion to auth/passkey/options (the user verified); the access token in the answer, the refresh token in the cookie',
          body: PasskeyLoginBody,
          response: { 200: BrowserLoginSchema, ...problems(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request, reply) => withCookie(request, reply, await auth.passkeyLogin(requireTenant(request), request.body, actorFrom(request))),
    );

    app.post(
      '/auth/session/mfa/verify',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: 'The second factor of a browser login (auth/session answered mfa_required): the access token in the answer, the refresh token in the cookie',
          body: MfaVerifyBody,
          response: { 200: BrowserLoginSchema, ...problems(400, 401, 404, 429) },
        },
      },
      async (request, reply) => withCookie(request, reply, await auth.verifyMfa(requireTenant(request), request.body, actorFrom(request))),
    );

    app.post(
      '/auth/session/mfa/totp/confirm',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: 'Finish a forced enrolment from a browser (auth/session answered mfa_enrolment_required): the first TOTP code; the recovery codes and the access token in the answer, the refresh token in the cookie',
          body: EnrolmentConfirmBody,
          response: { 200: BrowserEnrolledSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request, reply) => withCookie(request, reply, await auth.confirmEnrolment(requireTenant(request), request.body, actorFrom(request))),
    );

    app.post(
      '/auth/session/mfa/passkeys',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: 'Finish a forced enrolment from a browser with a passkey (the registration response to auth/mfa/passkeys/registration-options); the recovery codes and the access token in the answer, the refresh token in the cookie',
          body: EnrolmentPasskeyBody,
          response: { 200: BrowserEnrolledSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request, reply) => withCookie(request, reply, await auth.confirmPasskeyEnrolment(requireTenant(request), request.body, actorFrom(request))),
    );

    app.post(
      '/auth/session/refresh',
      {
        config: { access: 'public', authRateLimited: true },
        schema: {
          tags: ['auth'],
          summary: "A new access token for the browser session in the cookie (the cookie's refresh token rotates)",
          response: { 200: AccessSchema, ...problems(400, 401, 404, 429) },
        },
      },
      async (request, reply) => {
        const token = sessionCookie(request);
        if (!token) throw new DomainError('auth.invalid_refresh_token');
        const { refresh_token, ...answer } = await auth.refresh(requireTenant(request), token, actorFrom(request));
        setCookie(request, reply, refresh_token);
        return answer;
      },
    );

    app.delete(
      '/auth/session',
      {
        config: { access: 'self' },
        schema: { tags: ['auth'], summary: 'Log out of the browser session: it ends, and its cookie is cleared', response: { 204: Type.Null(), ...problems(401, 403, 404) } },
      },
      async (request, reply) => {
        await auth.logout(requireTenant(request), requireSession(request).sessionId, actorFrom(request));
        setCookie(request, reply, '', 0);
        return reply.status(204).send(null);
      },
    );
  };
}
