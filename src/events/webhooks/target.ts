import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { DomainError, text } from '../../errors.js';

/** Addresses a webhook may not reach unless private networks are allowed: loopback, private, link-local and the like. */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

/** Whether an address is in a range webhooks may not reach by default (IPv4-mapped IPv6 judged as IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** A target URL that passed the policy, with the addresses it resolved to (a request connects to one of these only). */
export interface CheckedTarget {
  readonly url: URL;
  readonly addresses: readonly { address: string; family: number }[];
}

/** A URL's form alone (scheme, no credentials, a host): the part checked without resolving. */
export function parseTarget(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw DomainError.invalid('url', text('reason.url_absolute'));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw DomainError.invalid('url', text('reason.url_scheme'));
  if (url.username || url.password) throw DomainError.invalid('url', text('reason.url_credentials'));
  if (!url.hostname) throw DomainError.invalid('url', text('reason.url_host'));
  return url;
}

/**
 * Resolves the host and checks every address it resolves to: private, loopback and link-local
 * ones are refused unless `allowPrivate`. The request then connects to these addresses only,
 * so a second resolution cannot send it elsewhere.
 */
export async function checkTarget(raw: string, allowPrivate: boolean): Promise<CheckedTarget> {
  const url = parseTarget(raw);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch {
      throw DomainError.invalid('url', text('reason.url_unresolved', { host }));
    }
  }
  if (addresses.length === 0) throw DomainError.invalid('url', text('reason.url_unresolved', { host }));
  if (!allowPrivate) {
    const refused = addresses.find((a) => isPrivateAddress(a.address));
    if (refused) throw DomainError.invalid('url', text('reason.url_private', { address: refused.address }));
  }
  return { url, addresses };
}
