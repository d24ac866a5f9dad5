import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { parseSecretKey, type Config } from '../config.js';
import { keptInDataDir } from '../data-dir.js';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A key's public name, stored with each ciphertext so the right key decrypts it after a rotation. */
function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * AES-256-GCM for secrets kept in tenant tables. The first key encrypts; every key decrypts
 * what it encrypted (rotation: put the new key first, keep the old ones until `secrets rotate`
 * has re-encrypted every row). A ciphertext reads `v1.<key id>.<iv>.<tag>.<data>` (base64url).
 */
export class SecretBox {
  private readonly current: { id: string; key: Buffer };
  private readonly byId: Map<string, Buffer>;

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('SecretBox needs a key');
    this.byId = new Map(keys.map((k) => [keyId(k), k]));
    this.current = { id: keyId(keys[0]!), key: keys[0]! };
  }

  get currentKeyId(): string {
    return this.current.id;
  }

  /**
   * `context` names where the ciphertext belongs (see channelSecretContext) and is
   * authenticated with it: a ciphertext copied to another row or tenant does not decrypt.
   */
  encrypt(value: unknown, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const data = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return [VERSION, this.current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.');
  }

  decrypt(text: string, context: string): unknown {
    const parts = text.split('.');
    const [version, id, iv, tag, data] = parts;
    if (parts.length !== 5 || version !== VERSION || !id || !iv || !tag || data === undefined) throw new Error('not a secret this service wrote');
    const key = this.byId.get(id);
    if (!key) throw new Error(`the secret was encrypted with key ${id}, which is not configured (CHANNEL_SECRETS_KEY / CHANNEL_SECRETS_PREVIOUS_KEYS)`);
    // A full 16-byte tag only: GCM would otherwise accept a truncated one.
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    return JSON.parse(Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8'));
  }

  /** Whether a ciphertext was made with the current key (rotation skips those). */
  isCurrent(text: string): boolean {
    return text.split('.')[1] === this.current.id;
  }
}

/** What a channel config's secrets are bound to: its tenant schema and its row. */
export function channelSecretContext(schema: string, id: string): string {
  return `channel_configs:${schema}:${id}`;
}

/** What a webhook endpoint's signing secrets are bound to: its tenant schema and its row. */
export function webhookSecretContext(schema: string, id: string): string {
  return `webhooks:${schema}:${id}`;
}

/** What a user's TOTP secret is bound to: its tenant schema and its `mfa_totp` row. */
export function totpSecretContext(schema: string, id: string): string {
  return `mfa_totp:${schema}:${id}`;
}

/**
 * The configured secret box: CHANNEL_SECRETS_KEY (+ CHANNEL_SECRETS_PREVIOUS_KEYS), or, outside
 * production, a key generated once and kept in DATA_DIR.
 */
export function loadSecretBox(config: Pick<Config, 'dataDir' | 'channelSecrets'>): SecretBox {
  const previous = config.channelSecrets.previousKeys;
  if (config.channelSecrets.key !== undefined) return new SecretBox([config.channelSecrets.key, ...previous]);
  const { material, file } = keptInDataDir(config.dataDir, 'channel-secrets.key', () => randomBytes(32).toString('base64'));
  return new SecretBox([parseSecretKey(material, file), ...previous]);
}
