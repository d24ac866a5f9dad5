import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';

export type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON };

/** A registration response as clients send it (`clientExtensionResults` may be left out). */
export type RegistrationJSON = Omit<RegistrationResponseJSON, 'clientExtensionResults' | 'response' | 'authenticatorAttachment'> & {
  response: Omit<RegistrationResponseJSON['response'], 'transports'> & { transports?: string[] };
  authenticatorAttachment?: RegistrationResponseJSON['authenticatorAttachment'] | null;
  clientExtensionResults?: RegistrationResponseJSON['clientExtensionResults'];
};
/** An assertion as clients send it (`clientExtensionResults` may be left out). */
export type AssertionJSON = Omit<AuthenticationResponseJSON, 'clientExtensionResults' | 'response' | 'authenticatorAttachment'> & {
  response: Omit<AuthenticationResponseJSON['response'], 'userHandle'> & { userHandle?: string | null };
  authenticatorAttachment?: AuthenticationResponseJSON['authenticatorAttachment'] | null;
  clientExtensionResults?: AuthenticationResponseJSON['clientExtensionResults'];
};

/** The library's form of a response: nulls (as `toJSON()` gives them) left out, extension results at least empty. */
function normalized<T extends { authenticatorAttachment?: unknown; clientExtensionResults?: object }>(given: T) {
  const { authenticatorAttachment, ...rest } = given;
  return { ...rest, ...(authenticatorAttachment ? { authenticatorAttachment } : {}), clientExtensionResults: given.clientExtensionResults ?? {} };
}

/** Lifetime of a registration or assertion challenge, and the timeout the browser is told: five minutes, as a login step lasts. */
export const PASSKEY_CHALLENGE_TTL_SECONDS = 300;

/** Who the credentials are for: the RP ID (PUBLIC_URL's host) and the origins a ceremony may run on. */
export interface RelyingParty {
  readonly id: string;
  readonly origins: readonly string[];
}

/**
 * The relying party of PUBLIC_URL: its host is the RP ID, and its origin plus the CORS_ORIGINS
 * (browser front ends on other origins) are the origins accepted. A browser only makes a
 * credential for an origin whose host is the RP ID or under it, so other origins never succeed.
 */
export function relyingParty(publicUrl: string, corsOrigins: readonly string[] = []): RelyingParty {
  const url = new URL(publicUrl);
  return { id: url.hostname, origins: [...new Set([url.origin, ...corsOrigins])] };
}

const TRANSPORTS: readonly string[] = ['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'];

/** The transports WebAuthn knows, of those a client reported (others are dropped, not stored). */
export const knownTransports = (given: readonly string[] = []): AuthenticatorTransportFuture[] =>
  [...new Set(given)].filter((t): t is AuthenticatorTransportFuture => TRANSPORTS.includes(t));

/** The challenge a response's clientDataJSON carries, or null when it is not readable. */
export function challengeOf(clientDataJSON: string): string | null {
  try {
    const data = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown };
    return typeof data.challenge === 'string' && data.challenge.length > 0 ? data.challenge : null;
  } catch {
    return null;
  }
}

export function registrationOptions(rp: RelyingParty, input: { rpName: string; userId: string; userName: string; exclude: { id: string; transports: string[] }[] }): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: input.rpName,
    rpID: rp.id,
    userName: input.userName,
    // The user handle: the user's id, no personal data.
    userID: new TextEncoder().encode(input.userId),
    timeout: PASSKEY_CHALLENGE_TTL_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: input.exclude.map((c) => ({ id: c.id, transports: knownTransports(c.transports) })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
  });
}

/** The user handle a registration gives the authenticator (the user's id, no personal data), as an assertion's JSON carries it back. */
export const userHandleOf = (userId: string): string => Buffer.from(userId, 'utf8').toString('base64url');

/**
 * Assertion options: `allow` lists the user's credentials for a second factor; empty (a
 * passwordless sign-in, nobody known yet) lets the authenticator offer its discoverable ones,
 * and then user verification is required: the passkey stands for both factors.
 */
export function authenticationOptions(rp: RelyingParty, allow: { id: string; transports: string[] }[]): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.id,
    allowCredentials: allow.map((c) => ({ id: c.id, transports: knownTransports(c.transports) })),
    timeout: PASSKEY_CHALLENGE_TTL_SECONDS * 1000,
    userVerification: allow.length ? 'preferred' : 'required',
  });
}

/** A verified registration: what is stored of the new credential. */
export interface NewCredential {
  readonly credentialId: string;
  readonly publicKey: Buffer;
  readonly counter: number;
  readonly transports: AuthenticatorTransportFuture[];
  readonly backedUp: boolean;
}

/**
 * Checks a registration response against its challenge, the origins and the RP ID (attestation
 * `none`; user presence required, verification preferred only). Null when it does not hold.
 */
export async function verifyRegistration(rp: RelyingParty, given: RegistrationJSON, challenge: string): Promise<NewCredential | null> {
  const transports = knownTransports(given.response.transports);
  const response = { ...normalized(given), response: { ...given.response, transports } } as RegistrationResponseJSON;
  try {
    const result = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: [...rp.origins], expectedRPID: rp.id, requireUserVerification: false });
    if (!result.verified) return null;
    const { credential, credentialBackedUp } = result.registrationInfo;
    return {
      credentialId: credential.id,
      publicKey: Buffer.from(credential.publicKey),
      counter: credential.counter,
      transports,
      backedUp: credentialBackedUp,
    };
  } catch {
    return null;
  }
}

/**
 * Checks an assertion against its challenge, the origins, the RP ID and the stored public key:
 * the counter and backup state it reports, or null. The counter rule is the caller's (it needs
 * the stored counter under a lock-free conditional update), so the library's is not asked for.
 * `requireUserVerification`: a passwordless sign-in's assertion must say the user was verified.
 */
export async function verifyAssertion(
  rp: RelyingParty,
  given: AssertionJSON,
  challenge: string,
  credential: { id: string; publicKey: Buffer },
  requireUserVerification = false,
): Promise<{ counter: number; backedUp: boolean } | null> {
  const { userHandle, ...assertion } = given.response;
  const response = { ...normalized(given), response: { ...assertion, ...(userHandle ? { userHandle } : {}) } } as AuthenticationResponseJSON;
  try {
    const result = await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: [...rp.origins],
      expectedRPID: rp.id,
      credential: { id: credential.id, publicKey: new Uint8Array(credential.publicKey), counter: 0 },
      requireUserVerification,
    });
    if (!result.verified) return null;
    return { counter: result.authenticationInfo.newCounter, backedUp: result.authenticationInfo.credentialBackedUp };
  } catch {
    return null;
  }
}
