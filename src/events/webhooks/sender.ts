import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { checkTarget, type CheckedTarget } from './target.js';

/** What one delivery attempt got: a status code, or an error (refused target, timeout, network). */
export interface AttemptResult {
  readonly status: number | null;
  readonly error: string | null;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** Requests to one endpoint over kept-alive connections to one checked address. */
export interface Endpoint {
  post(body: string, headers: Record<string, string>): Promise<AttemptResult>;
  close(): void;
}

/**
 * Opens an endpoint for a run of deliveries: the target checked (its addresses now) and every
 * connection pinned to a checked address, one at a time, kept alive between requests (a new
 * connection, and a TLS handshake, per delivery capped an endpoint at ~140 events/s). No
 * redirect is followed (a 3xx is an answer like any non-2xx); `timeoutMs` bounds each exchange;
 * at most 64 KiB of an answer is read. A refused target is the error.
 */
export async function openEndpoint(url: string, options: { allowPrivate: boolean; timeoutMs: number }): Promise<Endpoint | AttemptResult> {
  let target: CheckedTarget;
  try {
    target = await checkTarget(url, options.allowPrivate);
  } catch (error) {
    return { status: null, error: `target refused: ${(error as Error).message}` };
  }
  const pinned = target.addresses[0]!;
  const lookup: LookupFunction = (_host, opts, callback) => {
    if ((opts as { all?: boolean }).all) (callback as unknown as (e: null, a: CheckedTarget['addresses']) => void)(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
  const client = target.url.protocol === 'https:' ? https : http;
  const agent = new client.Agent({ keepAlive: true, maxSockets: 1, lookup } as http.AgentOptions);
  return {
    close: () => agent.destroy(),
    post: (body, headers) =>
      new Promise<AttemptResult>((resolve) => {
        let settled = false;
        const finish = (result: AttemptResult) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(result);
        };
        const request = client.request(
          target.url,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'system-service-webhooks', ...headers },
            lookup,
            agent,
          },
          (response) => {
            let read = 0;
            response.on('data', (chunk: Buffer) => {
              read += chunk.length;
              if (read > MAX_ANSWER_BYTES) response.destroy();
            });
            response.on('end', () => finish({ status: response.statusCode ?? null, error: null }));
            response.on('close', () => finish({ status: response.statusCode ?? null, error: null }));
            response.on('error', () => finish({ status: response.statusCode ?? null, error: null }));
          },
        );
        const timer = setTimeout(() => {
          request.destroy();
          finish({ status: null, error: `no answer within ${options.timeoutMs} ms` });
        }, options.timeoutMs);
        request.on('error', (error) => finish({ status: null, error: error.message }));
        request.end(body);
      }),
  };
}
