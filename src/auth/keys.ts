import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type Config, type JwtAlgorithm } from '../config.js';
import { keptInDataDir } from '../data-dir.js';

/** Key material for signing and verifying JWTs with the one configured algorithm. */
export interface JwtKeys {
  readonly algorithm: JwtAlgorithm;
  readonly signingKey: KeyObject | Uint8Array;
  readonly verificationKey: KeyObject | Uint8Array;
  /** Where a generated development key was kept, if one was. */
  readonly generatedAt?: string;
  /** RFC 7638 thumbprint of the public key (asymmetric algorithms): the JWT `kid`. */
  readonly keyId?: string;
  /** The public key as a JWK, published at /.well-known/jwks.json (asymmetric algorithms). */
  readonly publicJwk?: Record<string, unknown>;
  /** The `iss` and `aud` of system tokens (SYSTEM_TOKEN_ISSUER, SYSTEM_TOKEN_AUDIENCE); defaults when absent. */
  readonly systemToken?: { readonly issuer: string; readonly audience: string };
}

/**
 * A 32-byte key for another purpose (`info`) derived with HKDF-SHA256 from the signing key
 * material, so that one required secret covers it; rotating the JWT key rotates it too.
 */
export function derivedKey(keys: JwtKeys, info: string): Buffer {
  const material = keys.signingKey instanceof Uint8Array ? keys.signingKey : keys.signingKey.export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', material, 'system-service', info, 32));
}

function asymmetric(algorithm: JwtAlgorithm): boolean {
  return algorithm === 'RS256' || algorithm === 'EdDSA';
}

function generated(config: Config): { material: string; file: string } {
  return keptInDataDir(config.dataDir, `jwt-${config.jwt.algorithm.toLowerCase()}.key`, () =>
    asymmetric(config.jwt.algorithm)
      ? (config.jwt.algorithm === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519')).privateKey
          .export({ type: 'pkcs8', format: 'pem' })
          .toString()
      : randomBytes(48).toString('base64url'),
  );
}

/**
 * HS*: JWT_SECRET_KEY is the secret. RS256/EdDSA: JWT_SECRET_KEY is a PKCS#8 PEM private
 * key, or the path of a file holding one. Unset outside production: generated once and
 * kept in DATA_DIR, so tokens survive restarts.
 */
export function loadJwtKeys(config: Config): JwtKeys {
  const { algorithm } = config.jwt;
  const { systemToken } = config;
  const given = config.jwt.secretKey;
  const source = given === undefined ? generated(config) : undefined;
  let material = given ?? source!.material;
  if (!asymmetric(algorithm)) {
    const secret = new TextEncoder().encode(material);
    return { algorithm, signingKey: secret, verificationKey: secret, generatedAt: source?.file, systemToken };
  }
  if (!material.includes('-----BEGIN')) {
    try {
      material = readFileSync(material, 'utf8');
    } catch {
      throw new ConfigError('JWT_SECRET_KEY', `must be a PEM private key or the path of a readable PEM file for ${algorithm}`);
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(material);
  } catch {
    throw new ConfigError('JWT_SECRET_KEY', `is not a valid PEM private key for ${algorithm}`);
  }
  const expectedType = algorithm === 'RS256' ? 'rsa' : 'ed25519';
  if (privateKey.asymmetricKeyType !== expectedType) {
    throw new ConfigError('JWT_SECRET_KEY', `must be an ${expectedType} key for ${algorithm} (got ${privateKey.asymmetricKeyType})`);
  }
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  const keyId = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return {
    algorithm,
    signingKey: privateKey,
    verificationKey: publicKey,
    generatedAt: source?.file,
    keyId,
    publicJwk: { ...jwk, kid: keyId, alg: algorithm, use: 'sig' },
    systemToken,
  };
}
