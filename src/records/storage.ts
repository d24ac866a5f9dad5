import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DomainError, text } from '../errors.js';

export interface StoredFile {
  readonly sizeBytes: number;
  readonly sha256: string;
}

/**
 * Where attachment bytes live. Keys are `<schema>/<uuid>`, made by the service, never by a
 * caller. Local disk is the default; an S3-compatible store implements the same three calls.
 */
export interface FileStorage {
  /**
   * Streams `source` into `key`, hashing as it goes. More than `maxBytes` aborts the write,
   * leaves nothing behind and throws a 413 DomainError.
   */
  put(key: string, source: Readable, maxBytes: number): Promise<StoredFile>;
  /** The bytes of `key`; throws a 404 DomainError when they are gone. */
  get(key: string): Promise<Readable>;
  /** Removes `key`; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

const KEY = /^[a-z][a-z0-9_]{0,62}\/[0-9a-f-]{36}$/;

/** Counts and hashes what passes through; fails once more than `maxBytes` went by. */
class Meter extends Transform {
  readonly hash = createHash('sha256');
  size = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      done(new DomainError('request.too_large', text('detail.file_too_large', { limit: this.maxBytes })));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
}

/** Files under one directory: `<root>/<schema>/<uuid>`, written to a temporary name and renamed when complete. */
export class LocalDiskStorage implements FileStorage {
  constructor(private readonly root: string) {}

  private file(key: string): string {
    if (!KEY.test(key)) throw new Error(`invalid storage key ${key}`);
    return path.join(this.root, key);
  }

  async put(key: string, source: Readable, maxBytes: number): Promise<StoredFile> {
    const target = this.file(key);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const partial = `${target}.partial-${randomBytes(6).toString('hex')}`;
    const meter = new Meter(maxBytes);
    try {
      await pipeline(source, meter, createWriteStream(partial, { mode: 0o600 }));
      await rename(partial, target);
    } catch (error) {
      source.resume();
      await rm(partial, { force: true });
      throw error;
    }
    return { sizeBytes: meter.size, sha256: meter.hash.digest('hex') };
  }

  async get(key: string): Promise<Readable> {
    const file = this.file(key);
    try {
      await stat(file);
    } catch {
      throw DomainError.notFound('file');
    }
    return createReadStream(file);
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }
}
