import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problems } from '../http/schemas.js';
import { actorFrom, requireSession, requireTenant } from '../http/context.js';
import { UserSchema } from '../users/view.js';
import { MfaEnrolmentRequiredSchema, MfaRequiredSchema } from './mfa/schemas.js';
import type { AuthService } from './service.js';

export const TokenPairSchema = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
});

const Password = Type.String({ minLength: 1, maxLength: 4096 });

export const LoginBody = Type.Object(
  {
    email: Type.Optional(Type.String({ maxLength: 254, examples: ['admin@acme.example'] })),
    username: Type.Optional(Type.String({ maxLength: 64 })),
    password: Password,
  },
  { additionalProperties: false },
);
export const publicAuth = { access: 'public' as const, authRateLimited: true };
/** A user's own route that takes a password or code: rate-limited per client like sign-in. */
export const selfProof = { access: 'self' as const, authRateLimited: true };

/** A finished login: the token pair and the user. */
export const LoginTokensSchema = Type.Object({ ...TokenPairSchema.properties, user: UserSchema });

/** `auth/login`: the tokens, or (SPEC section 19) the second step first. */
export const LoginAnswerSchema = Type.Union([LoginTokensSchema, MfaRequiredSchema, MfaEnrolmentRequiredSchema]);

/** `/api/v1/tenants/{tenant_slug}/auth/...` */
export function authRoutes(auth: AuthService): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Reset requests finish after their answer: their failures go to the log, and closing waits for them.
    auth.reportBackgroundErrors((error, task, requestId) => app.log.warn({ err: error, task, ...(requestId ? { reqId: requestId } : {}) }, `${task} failed`));
    app.addHook('onClose', () => auth.settled());

    app.post(
      '/auth/login',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Log in with an email or a username and a password; a user with a second factor gets an mfa_token for auth/mfa/verify instead of tokens',
          body: LoginBody,
          response: { 200: LoginAnswerSchema, ...problems(400, 401, 403, 404, 429) },
        },
      },
      async (request) => auth.login(requireTenant(request), request.body, actorFrom(request)),
    );

    app.post(
      '/auth/refresh',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Exchange a refresh token for a new pair (the old one stops working; reusing it ends the session)',
          body: Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
          response: { 200: TokenPairSchema, ...problems(400, 401, 404, 429) },
        },
      },
      async (request) => auth.refresh(requireTenant(request), request.body.refresh_token, actorFrom(request)),
    );

    app.post(
      '/auth/logout',
      { config: { access: 'self' }, schema: { tags: ['auth'], summary: 'End the current session (its access and refresh tokens stop working)', response: { 204: Type.Null(), ...problems(401, 403, 404) } } },
      async (request, reply) => {
        await auth.logout(requireTenant(request), requireSession(request).sessionId, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/auth/password-reset/request',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Mail a password reset link (always 202, answered before the account is looked up; a few mails per account and hour)',
          body: Type.Object({ email: Type.String({ maxLength: 254 }) }, { additionalProperties: false }),
          response: { 202: Type.Object({}, { description: 'Accepted: a link is mailed if the account exists' }), ...problems(400, 404, 429) },
        },
      },
      async (request, reply) => {
        auth.requestPasswordReset(requireTenant(request), request.body.email, actorFrom(request));
        return reply.status(202).send({});
      },
    );

    app.post(
      '/auth/password-reset/confirm',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Set a new password with a reset token; ends every session of the user',
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }), new_password: Password }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...problems(400, 404, 429) },
        },
      },
      async (request, reply) => {
        await auth.confirmPasswordReset(requireTenant(request), request.body.token, request.body.new_password, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/auth/verify-email',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Verify an email address with the token mailed to it',
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...problems(400, 404, 429) },
        },
      },
      async (request, reply) => {
        await auth.verifyEmail(requireTenant(request), request.body.token, actorFrom(request));
        return reply.status(204).send(null);
      },
    );
  };
}
