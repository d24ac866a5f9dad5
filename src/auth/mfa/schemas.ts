import { Type } from 'typebox';
import { DateTime } from '../../http/schemas.js';

const MfaToken = Type.String({ minLength: 1, maxLength: 512, description: 'The `mfa_token` of the login answer' });
const Code = Type.String({ minLength: 1, maxLength: 64, examples: ['123456'] });
const Method = Type.Union([Type.Literal('totp'), Type.Literal('recovery_code')]);

/** `auth/login` for a user with a second factor: no tokens yet (SPEC section 19). */
export const MfaRequiredSchema = Type.Object({
  mfa_required: Type.Literal(true),
  mfa_token: Type.String({ description: 'Single use, for auth/mfa/verify; bound to the tenant and the user' }),
  methods: Type.Array(Method),
  expires_in: Type.Integer({ description: 'Seconds until the mfa_token expires' }),
});

/** `auth/login` under `auth.mfa = required` for a user without a factor: the token only enrols one. */
export const MfaEnrolmentRequiredSchema = Type.Object({
  mfa_enrolment_required: Type.Literal(true),
  mfa_token: Type.String({ description: 'Single use, for auth/mfa/totp and auth/mfa/totp/confirm only' }),
  methods: Type.Array(Type.Literal('totp')),
  expires_in: Type.Integer({ description: 'Seconds until the mfa_token expires' }),
});

/** `auth/mfa/verify`: the token and exactly one factor. */
export const MfaVerifyBody = Type.Object(
  {
    mfa_token: MfaToken,
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A TOTP code, or a recovery code', examples: ['123456'] })),
    recovery_code: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);

export const MfaTokenBody = Type.Object({ mfa_token: MfaToken }, { additionalProperties: false });
export const EnrolmentConfirmBody = Type.Object({ mfa_token: MfaToken, code: Code }, { additionalProperties: false });
export const CodeBody = Type.Object({ code: Code }, { additionalProperties: false });

/** A current TOTP code or the password, before a factor changes. */
export const ReauthenticationBody = Type.Object(
  { code: Type.Optional(Code), password: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) },
  { additionalProperties: false },
);

export const TotpEnrolmentSchema = Type.Object({
  secret: Type.String({ description: 'Base32 TOTP secret (SHA-1, 6 digits, 30 s): shown in this answer only' }),
  otpauth_url: Type.String({ description: 'otpauth:// URI for an authenticator app (show it as a QR code)' }),
});

export const RecoveryCodesSchema = Type.Object({
  recovery_codes: Type.Array(Type.String(), { description: 'Ten single-use codes, shown once: each signs in once in place of a TOTP code' }),
});

export const MfaStatusSchema = Type.Object({
  mode: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('required')], { description: "The tenant's auth.mfa setting" }),
  totp: Type.Object({ status: Type.Union([Type.Literal('none'), Type.Literal('pending'), Type.Literal('active')]), confirmed_at: Type.Union([DateTime, Type.Null()]) }),
  recovery_codes_remaining: Type.Integer(),
});
