import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadJwtKeys } from '../src/auth/keys.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { runTs } from './support/process.js';

describe('loadConfig', () => {
  it('takes PUBLIC_URL from the port it listens on when unset', () => {
    expect(loadConfig({}).publicUrl).toBe('http://localhost:8004');
    expect(loadConfig({ SERVICE_PORT: '8024' }).publicUrl).toBe('http://localhost:8024');
    expect(loadConfig({ SERVICE_PORT: '8024', PUBLIC_URL: 'https://id.example.com' }).publicUrl).toBe('https://id.example.com');
  });

  it('gives the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      environment: 'development',
      databaseUrl: undefined,
      redisUrl: undefined,
      jwt: { algorithm: 'HS256', secretKey: undefined },
      port: 8004,
      host: '0.0.0.0',
      logLevel: 'info',
      pool: { max: 10 },
    });
    expect(config.dataDir).toBe(path.resolve('.data'));
  });

  it.each([
    [{ ENVIRONMENT: 'staging' }, 'ENVIRONMENT'],
    [{ ENVIRONMENT: 'production' }, 'JWT_SECRET_KEY'],
    [{ JWT_ALGORITHM: 'none' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'HS256', JWT_SECRET_KEY: 'short' }, 'JWT_SECRET_KEY'],
    [{ SERVICE_PORT: 'eighty' }, 'SERVICE_PORT'],
    [{ SERVICE_PORT: '70000' }, 'SERVICE_PORT'],
    [{ SERVICE_PORT: '-1' }, 'SERVICE_PORT'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'mysql://localhost/db' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'http://localhost' }, 'REDIS_URL'],
    [{ SMTP_URL: 'ftp://mail' }, 'SMTP_URL'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ DATABASE_POOL_MAX: '0' }, 'DATABASE_POOL_MAX'],
    [{ CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://app.example.com/' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://app.example.com, app.example.org' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://App.Example.com' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://app.example.com:443' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'ftp://files.example.com' }, 'CORS_ORIGINS'],
  ])('refuses %j naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    try {
      loadConfig(env);
    } catch (error) {
      expect((error as ConfigError).variable).toBe(variable);
      expect((error as ConfigError).message).toMatch(new RegExp(`^Invalid configuration: ${variable} `));
    }
  });

  it('reads CORS_ORIGINS as exact origins; none by default; a near miss is named with its fix', () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(loadConfig({ CORS_ORIGINS: ' https://app.example.com, http://localhost:5173 ,' }).corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/' })).toThrow(
      'Invalid configuration: CORS_ORIGINS must be a comma-separated list of origins such as https://app.example.com: http(s), lower-case host, a port only when not the default, no path, no trailing slash, no wildcard (got "https://app.example.com/"; did you mean "https://app.example.com"?)',
    );
  });

  it('accepts a production configuration with its secrets', () => {
    // Weak secrets are refused in production (test/weak-secrets.test.ts): these look random.
    const key = Buffer.from('9f3c1a7be2d4058c6a11f0e7b39d2c84517ea6d03b9f28c4e61d7a05b2c98f3e', 'hex');
    const production = { ENVIRONMENT: 'production', JWT_SECRET_KEY: 'Qm7vT2pX9kLr4sWz8cYb1nHf6jDg3aEu0iOq5tRy', DATABASE_URL: 'postgresql://u:p@db:5432/app', SERVICE_PORT: '9000', CHANNEL_SECRETS_KEY: key.toString('base64') };
    const config = loadConfig(production);
    expect(config).toMatchObject({ environment: 'production', port: 9000, databaseUrl: 'postgresql://u:p@db:5432/app' });
    expect(config.channelSecrets.key?.equals(key)).toBe(true);
    expect(loadConfig({ ...production, CHANNEL_SECRETS_KEY: key.toString('hex'), CHANNEL_SECRETS_PREVIOUS_KEYS: `${Buffer.alloc(32, 2).toString('base64')},${Buffer.alloc(32, 3).toString('hex')}` }).channelSecrets.previousKeys).toHaveLength(2);
    expect(() => loadConfig({ ...production, CHANNEL_SECRETS_KEY: undefined })).toThrow('CHANNEL_SECRETS_KEY is required when ENVIRONMENT=production');
    expect(() => loadConfig({ ...production, CHANNEL_SECRETS_KEY: 'too-short' })).toThrow('CHANNEL_SECRETS_KEY must be 32 bytes');
    expect(() => loadConfig({ ...production, CHANNEL_SECRETS_PREVIOUS_KEYS: 'abc' })).toThrow('CHANNEL_SECRETS_PREVIOUS_KEYS must be 32 bytes');
  });
});

describe('JWT keys', () => {
  it('generates a development secret once and keeps it in DATA_DIR', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-keys-'));
    try {
      const first = loadJwtKeys(loadConfig({ DATA_DIR: dataDir }));
      const second = loadJwtKeys(loadConfig({ DATA_DIR: dataDir }));
      expect(first.generatedAt).toBe(path.join(dataDir, 'jwt-hs256.key'));
      expect(Buffer.from(second.signingKey as Uint8Array).equals(Buffer.from(first.signingKey as Uint8Array))).toBe(true);
      const ed = loadJwtKeys(loadConfig({ DATA_DIR: dataDir, JWT_ALGORITHM: 'EdDSA' }));
      expect((ed.verificationKey as { asymmetricKeyType?: string }).asymmetricKeyType).toBe('ed25519');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses key material of the wrong kind for the algorithm', () => {
    expect(() => loadJwtKeys(loadConfig({ JWT_ALGORITHM: 'RS256', JWT_SECRET_KEY: '/no/such/key.pem' }))).toThrow(/JWT_SECRET_KEY/);
  });
});

describe('start-up with bad configuration', () => {
  it('stops with exit code 1 and one line naming the variable', async () => {
    const result = await runTs('src/main.ts', [], { SERVICE_PORT: 'abc', DATABASE_URL: undefined });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toEqual(['Invalid configuration: SERVICE_PORT must be an integer from 0 to 65535 (got "abc")']);
  });

  it('refuses production without a JWT secret', async () => {
    const result = await runTs('src/main.ts', [], { ENVIRONMENT: 'production', JWT_SECRET_KEY: undefined });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('Invalid configuration: JWT_SECRET_KEY is required when ENVIRONMENT=production');
  });
});
