import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { weakKeyReason, weakSecretReason } from '../src/secret-strength.js';
import { runTs } from './support/process.js';

const STRONG_JWT = 'Qm7vT2pX9kLr4sWz8cYb1nHf6jDg3aEu0iOq5tRy';
const STRONG_KEY = Buffer.from('9f3c1a7be2d4058c6a11f0e7b39d2c84517ea6d03b9f28c4e61d7a05b2c98f3e', 'hex');
const production = { ENVIRONMENT: 'production', DATABASE_URL: 'postgresql://u:p@db:5432/app', JWT_SECRET_KEY: STRONG_JWT, CHANNEL_SECRETS_KEY: STRONG_KEY.toString('base64') };

function refusal(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('accepted');
}

describe('weak secrets in production', () => {
  it.each([
    ['one character repeated', 'a'.repeat(32)],
    ['a short pattern repeated', 'abcd'.repeat(8)],
    ['a word repeated', 'password'.repeat(5)],
    ['a word repeated with a partial tail', 'letmein'.repeat(6)],
    ['few distinct characters', 'aabbaabbabababbbaaabbbabaabbbaabababab'],
    ['an alphabet run', 'abcdefghijklmnopqrstuvwxyz0123456789'],
    ['too little entropy for its length', '0123456789abcdef0123456789abcde9'.slice(0, 30) + 'zz'],
  ])('refuses a JWT_SECRET_KEY that is %s', (_what, secret) => {
    const error = refusal({ ...production, JWT_SECRET_KEY: secret });
    expect(error.variable).toBe('JWT_SECRET_KEY');
    expect(error.message).toMatch(/^Invalid configuration: JWT_SECRET_KEY is too weak for production: /);
    expect(error.message).not.toContain('\n');
    // Outside production the same secret is taken (development keys are throwaway).
    expect(() => loadConfig({ ...production, ENVIRONMENT: 'development', JWT_SECRET_KEY: secret })).not.toThrow();
  });

  it.each([
    ['all zero', Buffer.alloc(32, 0)],
    ['one byte repeated', Buffer.alloc(32, 7)],
    ['a 4-byte pattern repeated', Buffer.from('deadbeef'.repeat(8), 'hex')],
    ['a 16-byte pattern repeated', Buffer.concat([STRONG_KEY.subarray(0, 16), STRONG_KEY.subarray(0, 16)])],
    ['a run of bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i))],
    ['few distinct bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => [1, 9, 200, 77][i % 3 === 0 ? 0 : i % 4]!))],
  ])('refuses a CHANNEL_SECRETS_KEY that is %s', (_what, key) => {
    const error = refusal({ ...production, CHANNEL_SECRETS_KEY: key.toString('base64') });
    expect(error.variable).toBe('CHANNEL_SECRETS_KEY');
    expect(error.message).toMatch(/^Invalid configuration: CHANNEL_SECRETS_KEY is too weak for production: /);
    expect(refusal({ ...production, IDEMPOTENCY_KEY: key.toString('hex') }).variable).toBe('IDEMPOTENCY_KEY');
  });

  it('accepts generated secrets of the documented commands, every time', () => {
    for (let i = 0; i < 200; i++) {
      const jwt = [randomBytes(48).toString('base64'), randomBytes(48).toString('base64url'), randomBytes(32).toString('hex'), randomBytes(16).toString('hex')][i % 4]!;
      expect(weakSecretReason(jwt), jwt).toBeUndefined();
      expect(weakKeyReason(randomBytes(32))).toBeUndefined();
    }
    const config = loadConfig({ ...production, IDEMPOTENCY_KEY: randomBytes(32).toString('base64') });
    expect(config.channelSecrets.key?.equals(STRONG_KEY)).toBe(true);
    expect(config.idempotencyKey).toHaveLength(32);
    // An asymmetric algorithm's JWT_SECRET_KEY is a PEM key (or its path): not a text secret to grade.
    expect(() => loadConfig({ ...production, JWT_ALGORITHM: 'EdDSA', JWT_SECRET_KEY: '/run/secrets/jwt.pem' })).not.toThrow();
  });

  it('stops start-up with one line naming the variable', { timeout: 60_000 }, async () => {
    const jwt = await runTs('src/main.ts', [], { ...production, JWT_SECRET_KEY: 'a'.repeat(32) });
    expect(jwt.code).toBe(1);
    expect(jwt.stdout).toBe('');
    expect(jwt.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Invalid configuration: JWT_SECRET_KEY is too weak for production: it is one character repeated/)]);
    const channel = await runTs('src/main.ts', [], { ...production, CHANNEL_SECRETS_KEY: Buffer.alloc(32).toString('hex') });
    expect(channel.code).toBe(1);
    expect(channel.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Invalid configuration: CHANNEL_SECRETS_KEY is too weak for production: it is one byte repeated/)]);
  });
});
