import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../errors.js';

/** A resource's ETag: its row version, as a strong validator. */
export function etagOf(version: number): string {
  return `"${version}"`;
}

export function setEtag(reply: FastifyReply, version: number): void {
  reply.header('etag', etagOf(version));
}

/**
 * The version an If-Match header requires, or undefined when there is none (or `*`).
 * Anything that is not one of our ETags can never match: 412.
 */
export function expectedVersion(request: FastifyRequest): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*(?:W\/)?"(\d{1,9})"\s*$/.exec(header);
  if (!match) throw new DomainError('request.version_mismatch');
  return Number(match[1]);
}
