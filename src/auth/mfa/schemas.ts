import { Type } from 'typebox';
import { DateTime } from '../../http/schemas.js';

const MfaToken = Type.String({ minLength: 1, maxLength: 512, description: 'The `mfa_token` of the login answer' });
const Code = Type.String({ minLength: 1, maxLength: 64, examples: ['123456'] });
const Method = Type.Union([Type.Literal('totp'), Type.Literal('webauthn'), Type.Literal('recovery_code')]);
const EnrolmentMethod = Type.Union([Type.Literal('totp'), Type.Literal('webauthn')]);

/** base64url as WebAuthn's JSON encodes binary (padding tolerated). */
const Base64Url = (maxLength: number, description?: string) => Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+={0,2}$', ...(description ? { description } : {}) });
// `PublicKeyCredential.toJSON()` gives null where the authenticator said nothing.
const Attachment = Type.Union([Type.Literal('platform'), Type.Literal('cross-platform'), Type.Null()]);
const Transports = Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 });

/**
 * What `navigator.credentials.create()` gives, as JSON (`PublicKeyCredential.toJSON()` or
 * @simplewebauthn/browser's `startRegistration`). Fields a browser adds beyond these are ignored.
 */
export const RegistrationResponse = Type.Object({
  id: Base64Url(1024, 'The credential ID'),
  rawId: Base64Url(1024),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url(16_384),
    attestationObject: Base64Url(65_536),
    transports: Type.Optional(Transports),
  }),
  authenticatorAttachment: Type.Optional(Attachment),
  clientExtensionResults: Type.Optional(Type.Object({})),
});

/** What `navigator.credentials.get()` gives, as JSON (or @simplewebauthn/browser's `startAuthentication`). */
export const AuthenticationResponse = Type.Object({
  id: Base64Url(1024, 'The credential ID'),
  rawId: Base64Url(1024),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url(16_384),
    authenticatorData: Base64Url(16_384),
    signature: Base64Url(1024),
    userHandle: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
  }),
  authenticatorAttachment: Type.Optional(Attachment),
  clientExtensionResults: Type.Optional(Type.Object({})),
});

const PasskeyName = Type.String({ minLength: 1, maxLength: 100, description: 'A label to tell your passkeys apart (default "Passkey")', examples: ['Laptop'] });

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
  mfa_token: Type.String({ description: 'Single use, for the enrolment routes (auth/mfa/totp, auth/mfa/passkeys) only' }),
  methods: Type.Array(EnrolmentMethod),
  expires_in: Type.Integer({ description: 'Seconds until the mfa_token expires' }),
});

/** `auth/mfa/verify`: the token and exactly one factor. */
export const MfaVerifyBody = Type.Object(
  {
    mfa_token: MfaToken,
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A TOTP code, or a recovery code', examples: ['123456'] })),
    recovery_code: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    webauthn: Type.Optional({ ...AuthenticationResponse, description: 'A passkey assertion to the challenge of auth/mfa/passkey-options' }),
  },
  { additionalProperties: false },
);

export const PasskeyLoginBody = Type.Object(
  { webauthn: { ...AuthenticationResponse, description: 'The assertion of a discoverable passkey to the challenge of auth/passkey/options, the user verified' } },
  { additionalProperties: false },
);
export const MfaTokenBody = Type.Object({ mfa_token: MfaToken }, { additionalProperties: false });
export const EnrolmentConfirmBody = Type.Object({ mfa_token: MfaToken, code: Code }, { additionalProperties: false });
export const CodeBody = Type.Object({ code: Code }, { additionalProperties: false });

/** A current TOTP code, the password, or a passkey assertion, before a factor changes. */
export const ReauthenticationBody = Type.Object(
  {
    code: Type.Optional(Code),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    webauthn: Type.Optional({ ...AuthenticationResponse, description: 'A passkey assertion to the challenge of me/mfa/passkeys/authentication-options' }),
  },
  { additionalProperties: false },
);

export const TotpEnrolmentSchema = Type.Object({
  secret: Type.String({ description: 'Base32 TOTP secret (SHA-1, 6 digits, 30 s): shown in this answer only' }),
  otpauth_url: Type.String({ description: 'otpauth:// URI for an authenticator app (show it as a QR code)' }),
});

export const RecoveryCodesSchema = Type.Object({
  recovery_codes: Type.Array(Type.String(), { description: 'Ten single-use codes, shown once: each signs in once in place of a TOTP code' }),
});

export const PasskeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  transports: Type.Array(Type.String(), { description: 'How the authenticator is reached (usb, nfc, ble, hybrid, internal), as the browser reported it' }),
  backed_up: Type.Boolean({ description: 'A synced (multi-device) passkey, as the authenticator last said' }),
  created_at: DateTime,
  last_used_at: Type.Union([DateTime, Type.Null()]),
});

/** A new passkey; `recovery_codes` only when it is the user's first factor (shown once). */
export const RegisteredPasskeySchema = Type.Object({ ...PasskeySchema.properties, recovery_codes: Type.Optional(RecoveryCodesSchema.properties.recovery_codes) });

export const PasskeyRegistrationBody = Type.Object({ name: Type.Optional(PasskeyName), response: RegistrationResponse }, { additionalProperties: false });
export const EnrolmentPasskeyBody = Type.Object({ mfa_token: MfaToken, name: Type.Optional(PasskeyName), response: RegistrationResponse }, { additionalProperties: false });

/** WebAuthn options as the browser takes them (`PublicKeyCredential.parseCreationOptionsFromJSON`, or @simplewebauthn/browser). */
export const CreationOptionsSchema = Type.Object(
  {
    challenge: Type.String(),
    rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
    user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
    pubKeyCredParams: Type.Array(Type.Object({ type: Type.Literal('public-key'), alg: Type.Integer() })),
    timeout: Type.Optional(Type.Integer()),
    excludeCredentials: Type.Optional(Type.Array(Type.Object({ id: Type.String(), type: Type.Literal('public-key'), transports: Type.Optional(Type.Array(Type.String())) }))),
    authenticatorSelection: Type.Optional(Type.Object({ residentKey: Type.Optional(Type.String()), requireResidentKey: Type.Optional(Type.Boolean()), userVerification: Type.Optional(Type.String()) })),
    attestation: Type.Optional(Type.String()),
    extensions: Type.Optional(Type.Object({}, { additionalProperties: true })),
    hints: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'PublicKeyCredentialCreationOptionsJSON: the challenge is single use and lasts five minutes' },
);

export const RequestOptionsSchema = Type.Object(
  {
    challenge: Type.String(),
    rpId: Type.Optional(Type.String()),
    timeout: Type.Optional(Type.Integer()),
    allowCredentials: Type.Optional(Type.Array(Type.Object({ id: Type.String(), type: Type.Literal('public-key'), transports: Type.Optional(Type.Array(Type.String())) }))),
    userVerification: Type.Optional(Type.String()),
    extensions: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { description: 'PublicKeyCredentialRequestOptionsJSON: the challenge is single use, lasts five minutes and belongs to this mfa_token' },
);

export const MfaStatusSchema = Type.Object({
  mode: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('required')], { description: "The tenant's auth.mfa setting" }),
  totp: Type.Object({ status: Type.Union([Type.Literal('none'), Type.Literal('pending'), Type.Literal('active')]), confirmed_at: Type.Union([DateTime, Type.Null()]) }),
  passkeys: Type.Array(PasskeySchema),
  recovery_codes_remaining: Type.Integer(),
});
