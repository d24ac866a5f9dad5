import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorFrom, requireSession, requireTenant } from '../../http/context.js';
import { problems } from '../../http/schemas.js';
import { LoginTokensSchema, publicAuth, selfProof } from '../routes.js';
import type { AuthService } from '../service.js';
import {
  CodeBody,
  CreationOptionsSchema,
  EnrolmentConfirmBody,
  EnrolmentPasskeyBody,
  MfaStatusSchema,
  MfaTokenBody,
  MfaVerifyBody,
  PasskeyLoginBody,
  PasskeyRegistrationBody,
  ReauthenticationBody,
  RecoveryCodesSchema,
  RegisteredPasskeySchema,
  RequestOptionsSchema,
  TotpEnrolmentSchema,
} from './schemas.js';
import type { MfaService } from './service.js';

const self = { access: 'self' as const };
const UserParams = Type.Object({ user_id: Type.String({ format: 'uuid' }) });
const PasskeyParams = Type.Object({ passkey_id: Type.String({ format: 'uuid' }) });

/**
 * Multi-factor authentication (SPEC section 19): the second step of a login and the forced
 * enrolment (`auth/mfa/*`, public, rate-limited like `auth/login`), the user's own factors
 * (`me/mfa/*`, a user session), and an administrator's reset (`users/{id}/mfa`).
 */

/** A forced enrolment's last step: the login's answer with the new recovery codes. */
const EnrolledLoginSchema = Type.Object({ ...LoginTokensSchema.properties, ...RecoveryCodesSchema.properties });
export function mfaRoutes(auth: AuthService, mfa: MfaService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/auth/mfa/verify',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Finish a login that answered mfa_required: the mfa_token and one factor (a TOTP code, a recovery code, or a passkey assertion in webauthn); a wrong one counts towards the lockout',
          body: MfaVerifyBody,
          response: { 200: LoginTokensSchema, ...problems(400, 401, 404, 429) },
        },
      },
      async (request) => auth.verifyMfa(requireTenant(request), request.body, actorFrom(request)),
    );

    app.post(
      '/auth/passkey/options',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'WebAuthn options for a passwordless sign-in: no credentials listed (the authenticator offers its passkeys for this site), user verification required, a challenge (single use, five minutes); the assertion goes to auth/passkey/login',
          response: { 200: RequestOptionsSchema, ...problems(404, 409, 429) },
        },
      },
      async (request) => mfa.signInPasskeyOptions(requireTenant(request)),
    );

    app.post(
      '/auth/passkey/login',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Passwordless sign-in: a passkey assertion (the user verified) stands for the password and the second factor; the normal token answer. A failure is audited, not counted towards the lockout',
          body: PasskeyLoginBody,
          response: { 200: LoginTokensSchema, ...problems(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request) => auth.passkeyLogin(requireTenant(request), request.body, actorFrom(request)),
    );

    app.post(
      '/auth/mfa/passkey-options',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: "WebAuthn options for the second step of a login (mfa_required): the user's passkeys allowed, a challenge for this mfa_token (single use, five minutes); the assertion goes to auth/mfa/verify as webauthn",
          body: MfaTokenBody,
          response: { 200: RequestOptionsSchema, ...problems(400, 401, 404, 429) },
        },
      },
      async (request) => mfa.loginPasskeyOptions(requireTenant(request), request.body.mfa_token, actorFrom(request)),
    );

    app.post(
      '/auth/mfa/passkeys/registration-options',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Forced enrolment (login answered mfa_enrolment_required): WebAuthn registration options for the user of the mfa_token',
          body: MfaTokenBody,
          response: { 200: CreationOptionsSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request) => mfa.enrolmentPasskeyOptions(requireTenant(request), request.body.mfa_token, actorFrom(request)),
    );

    app.post(
      '/auth/mfa/passkeys',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Forced enrolment: the registration response stores the passkey and finishes the login; the ten recovery codes come with the tokens. A response that does not verify counts towards the lockout',
          body: EnrolmentPasskeyBody,
          response: { 200: EnrolledLoginSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request) => auth.confirmPasskeyEnrolment(requireTenant(request), request.body, actorFrom(request)),
    );

    app.post(
      '/auth/mfa/totp',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Forced enrolment (login answered mfa_enrolment_required): a new TOTP secret for the user of the mfa_token',
          body: MfaTokenBody,
          response: { 201: TotpEnrolmentSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request, reply) => reply.status(201).send(await auth.startEnrolment(requireTenant(request), request.body.mfa_token, actorFrom(request))),
    );

    app.post(
      '/auth/mfa/totp/confirm',
      {
        config: publicAuth,
        schema: {
          tags: ['auth'],
          summary: 'Forced enrolment: the first TOTP code activates it and finishes the login; the ten recovery codes come with the tokens',
          body: EnrolmentConfirmBody,
          response: { 200: EnrolledLoginSchema, ...problems(400, 401, 404, 409, 429) },
        },
      },
      async (request) => auth.confirmEnrolment(requireTenant(request), request.body, actorFrom(request)),
    );

    app.get('/me/mfa', { config: self, schema: { tags: ['me'], summary: 'Your second factors: TOTP, passkeys and the recovery codes left', response: { 200: MfaStatusSchema, ...problems(401, 403, 404) } } }, async (request) =>
      mfa.status(requireTenant(request), requireSession(request).userId),
    );

    app.post(
      '/me/mfa/totp',
      {
        config: selfProof,
        schema: {
          tags: ['me'],
          summary: 'Start a TOTP enrolment after proving it is you (your password, or a passkey assertion: a session alone is not enough): the secret and otpauth URI (pending until confirmed with a code)',
          body: ReauthenticationBody,
          response: { 201: TotpEnrolmentSchema, ...problems(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request, reply) => reply.status(201).send(await mfa.startOwnTotp(requireTenant(request), requireSession(request).userId, request.body ?? {}, actorFrom(request))),
    );

    app.post(
      '/me/mfa/totp/confirm',
      {
        config: self,
        schema: { tags: ['me'], summary: 'Confirm the TOTP enrolment with a code: it becomes active; the ten recovery codes are in this answer only', body: CodeBody, response: { 200: RecoveryCodesSchema, ...problems(400, 401, 403, 404, 409) } },
      },
      async (request) => mfa.confirmTotp(requireTenant(request), requireSession(request).userId, request.body.code, actorFrom(request)),
    );

    app.delete(
      '/me/mfa/totp',
      {
        config: selfProof,
        schema: { tags: ['me'], summary: 'Remove your TOTP (a current code, your password, or a passkey assertion)', body: ReauthenticationBody, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 429) } },
      },
      async (request, reply) => {
        await mfa.disableTotp(requireTenant(request), requireSession(request).userId, request.body ?? {}, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/me/mfa/passkeys/registration-options',
      {
        config: selfProof,
        schema: {
          tags: ['me'],
          summary:
            'WebAuthn registration options for a new passkey (for navigator.credentials.create), after proving it is you (a current TOTP code, your password, or a passkey assertion: a passkey signs in alone, so a session is not enough): your passkeys excluded, attestation none; the challenge is single use and lasts five minutes',
          body: ReauthenticationBody,
          response: { 200: CreationOptionsSchema, ...problems(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request) => mfa.passkeyRegistrationOptions(requireTenant(request), requireSession(request).userId, actorFrom(request), null, request.body),
    );

    app.post(
      '/me/mfa/passkeys',
      {
        config: self,
        schema: {
          tags: ['me'],
          summary: 'Register a passkey: the registration response to your latest options, and a name; your first factor also gets ten recovery codes, in this answer only',
          body: PasskeyRegistrationBody,
          response: { 201: RegisteredPasskeySchema, ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await mfa.registerPasskey(requireTenant(request), requireSession(request).userId, request.body, actorFrom(request))),
    );

    app.post(
      '/me/mfa/passkeys/authentication-options',
      {
        config: self,
        schema: {
          tags: ['me'],
          summary: 'WebAuthn options to prove it is you with a passkey before changing a factor: the assertion goes in as webauthn (in place of a code or the password)',
          response: { 200: RequestOptionsSchema, ...problems(401, 403, 404, 409) },
        },
      },
      async (request) => mfa.reauthenticationPasskeyOptions(requireTenant(request), requireSession(request).userId, actorFrom(request)),
    );

    app.delete(
      '/me/mfa/passkeys/:passkey_id',
      {
        config: selfProof,
        schema: { tags: ['me'], summary: 'Remove one of your passkeys (a current TOTP code, your password, or a passkey assertion)', params: PasskeyParams, body: ReauthenticationBody, response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 429) } },
      },
      async (request, reply) => {
        await mfa.removePasskey(requireTenant(request), requireSession(request).userId, request.params.passkey_id, request.body ?? {}, actorFrom(request));
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/me/mfa/recovery-codes',
      {
        config: selfProof,
        schema: {
          tags: ['me'],
          summary: 'Ten new recovery codes in place of the old ones (a current code, your password, or a passkey assertion); shown in this answer only',
          body: ReauthenticationBody,
          response: { 200: RecoveryCodesSchema, ...problems(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request) => mfa.regenerateRecoveryCodes(requireTenant(request), requireSession(request).userId, request.body, actorFrom(request)),
    );

    app.delete(
      '/users/:user_id/mfa',
      {
        config: { access: { permission: 'users.update' } },
        schema: {
          tags: ['users'],
          summary: "Reset a user's second factors (TOTP, passkeys, recovery codes) and end their sessions; the out-rank rule applies",
          params: UserParams,
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await mfa.reset(requireTenant(request), request.params.user_id, actorFrom(request));
        return reply.status(204).send(null);
      },
    );
  };
}
