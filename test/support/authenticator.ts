import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/** The test app's PUBLIC_URL is http://app.example: its host is the RP ID, its origin the one accepted. */
export const ORIGIN = 'http://app.example';
export const RP_ID = 'app.example';

export const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();

const UP = 0x01;
const UV = 0x04;
const AT = 0x40;

export interface Ceremony {
  origin?: string;
  challenge?: string;
  rpId?: string;
  counter?: number;
  /** Whether the authenticator verified the user (PIN, biometrics): the UV flag; yes unless told. */
  userVerified?: boolean;
  /** The user handle an assertion carries back; the one registered unless told (null: none). */
  userHandle?: string | null;
}

/**
 * A software authenticator: one ES256 credential, its signature counter, and the two
 * ceremonies as a browser would hand their results to the server (the JSON form).
 */
export class SoftAuthenticator {
  readonly credentialId: Buffer;
  counter = 0;
  /** The user handle of the registration's options (a discoverable credential keeps it). */
  userHandle: string | null = null;

  constructor(
    private readonly keys: { privateKey: KeyObject; publicKey: KeyObject } = generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    credentialId?: Buffer,
  ) {
    this.credentialId = credentialId ?? randomBytes(32);
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  /** Another device holding the same key (a clone), with a counter of its own. */
  clone(): SoftAuthenticator {
    const twin = new SoftAuthenticator(this.keys, this.credentialId);
    twin.userHandle = this.userHandle;
    return twin;
  }

  /** The public key as COSE_Key (EC2, ES256, P-256). */
  private cosePublicKey(): Uint8Array {
    const jwk = this.keys.publicKey.export({ format: 'jwk' });
    return isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    );
  }

  private authData(rpId: string, flags: number, counter: number, attested: boolean): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    const parts: Buffer[] = [sha256(rpId), Buffer.from([flags]), count];
    if (attested) {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(this.credentialId.length);
      parts.push(Buffer.alloc(16), length, this.credentialId, Buffer.from(this.cosePublicKey()));
    }
    return Buffer.concat(parts);
  }

  private clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  /** navigator.credentials.create() for `options` (attestation "none"). */
  register(options: { challenge: string; user?: { id: string } }, c: Ceremony = {}) {
    this.userHandle = options.user?.id ?? null;
    const authData = this.authData(c.rpId ?? RP_ID, UP | UV | AT, this.counter, true);
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]) as never);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64url(this.clientData('webauthn.create', c.challenge ?? options.challenge, c.origin ?? ORIGIN)), attestationObject: b64url(attestationObject), transports: ['usb', 'warp-drive'] },
      authenticatorAttachment: 'cross-platform',
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get() for `options`: the counter rises first (unless a ceremony names one). */
  assert(options: { challenge: string }, c: Ceremony = {}) {
    const counter = c.counter ?? ++this.counter;
    const authData = this.authData(c.rpId ?? RP_ID, c.userVerified === false ? UP : UP | UV, counter, false);
    const clientDataJSON = this.clientData('webauthn.get', c.challenge ?? options.challenge, c.origin ?? ORIGIN);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.keys.privateKey);
    const handle = c.userHandle === undefined ? this.userHandle : c.userHandle;
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64url(clientDataJSON), authenticatorData: b64url(authData), signature: b64url(signature), ...(handle ? { userHandle: handle } : {}) },
      clientExtensionResults: {},
    };
  }
}
