/**
 * The load generator, as a child process of the harness (`bench/run.ts`): autocannon against one
 * URL, a short unmeasured run first, then the measured one; prints the result as JSON. In its own
 * process, its speed does not depend on what the harness did before (provisioning thousands of
 * schemas leaves the harness with a large heap).
 */
import autocannon from 'autocannon';
import { cpuPerRequest, snapshot } from './cpu.js';

export interface LoadSpec {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  seconds: number;
  /** Seconds of the unmeasured run before the measured one (0: none). */
  warmSeconds: number;
  /** How often autocannon samples the request count (default 1000): a run ends on a sample, and rps is the mean sample scaled to a second. */
  sampleMs?: number;
  connections: number;
  /** Requests per second over all connections (default: as fast as answered). */
  rate?: number;
  /** `new-user`: each request creates a user with a fresh email; `refresh`: each follows a rotation chain; `oidc-token`: each exchanges a code, then refreshes. */
  kind?: 'new-user' | 'refresh' | 'oidc-token';
  refreshTokens?: string[];
  /** `oidc-token`: authorization codes (each exchanged once) and the redirect URI they were issued to. */
  oidcCodes?: string[];
  redirectUri?: string;
  /** Paths (with query strings) asked in turn on each connection, instead of the URL's own. */
  paths?: string[];
  /** Processes whose CPU per request is reported, by group name (the service, the floor). */
  watch?: Record<string, number>;
}

const spec = JSON.parse(process.argv[2]!) as LoadSpec;

function requestsOf(): autocannon.Request[] | undefined {
  if (spec.paths?.length) return spec.paths.map((path) => ({ method: spec.method as 'GET', path }));
  if (spec.kind === 'new-user') {
    const domain = new URL(spec.url).pathname.split('/')[4];
    return [{ method: 'POST', setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: `new-${crypto.randomUUID()}@${domain}.example`, roles: ['viewer'] }) }) }];
  }
  if (spec.kind === 'refresh') {
    // A pool of live refresh tokens: a request takes one, its answer puts the rotated one back.
    const pool = [...(spec.refreshTokens ?? [])];
    return [
      {
        method: 'POST',
        setupRequest: (req) => ({ ...req, body: JSON.stringify({ refresh_token: pool.shift() }) }),
        onResponse: (status, body) => {
          if (status === 200) pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
        },
      },
    ];
  }
  if (spec.kind === 'oidc-token') {
    // Codes first (each exchanged once), then each connection refreshes with the refresh token its
    // last answer carried (the bench's client is confidential: its refresh tokens do not rotate).
    // autocannon may build a connection's next request before it hands over the last answer:
    // such a request takes the newest refresh token any answer carried.
    const codes: string[] = (spec.oidcCodes ?? []).map((code) => new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: spec.redirectUri ?? '' }).toString());
    let newest: string | undefined;
    return [
      {
        method: 'POST',
        setupRequest: (req, context: { next?: string }) => ({ ...req, body: context.next ?? codes.shift() ?? newest }),
        onResponse: (status, body, context: { next?: string }) => {
          if (status === 200) context.next = newest = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: (JSON.parse(body) as { refresh_token: string }).refresh_token }).toString();
        },
      },
    ];
  }
  return undefined;
}

// Built once: the refresh chain carries over from the warm-up run to the measured one.
const requests = requestsOf();
const sampleMs = spec.sampleMs ?? 1000;
const run = async (duration: number) => {
  // Latencies are kept exactly (autocannon's histogram rounds them to whole milliseconds: too
  // coarse to compare p99s of a few milliseconds); like autocannon's, of 2xx answers only.
  const latencies: number[] = [];
  // Without a callback, autocannon returns its instance (an EventEmitter) made awaitable.
  const instance = autocannon({
    url: spec.url,
    method: spec.method as 'GET',
    headers: { 'content-type': 'application/json', ...spec.headers },
    body: spec.body,
    requests,
    connections: spec.connections,
    ...(spec.rate ? { overallRate: spec.rate } : {}),
    duration,
    sampleInt: sampleMs,
  }) as unknown as autocannon.Instance & Promise<autocannon.Result>;
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  return { result: await instance, latencies: latencies.sort((a, b) => a - b) };
};
/** Nearest-rank percentile, in milliseconds to 0.01. */
const percentile = (sorted: number[], p: number) => (sorted.length ? Math.round(sorted[Math.ceil((p / 100) * sorted.length) - 1]! * 100) / 100 : 0);

// A short unmeasured run first, so both sides are measured warm (JIT, caches, pool).
if (spec.warmSeconds > 0) await run(spec.warmSeconds);
const watch = spec.watch ?? {};
const before = snapshot(watch);
const ownBefore = process.cpuUsage();
const { result, latencies } = await run(spec.seconds);
const own = process.cpuUsage(ownBefore);
const after = snapshot(watch);
const answered = result.requests.total;
const cpu = before.pids.size === 0 ? undefined : { ...cpuPerRequest(before, after, answered), load_generator: Math.round((own.user + own.system) / Math.max(1, answered)) };
process.stdout.write(
  `${JSON.stringify({ rps: Math.round(result.requests.average * (1000 / sampleMs)), p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99), errors: result.errors + result.non2xx, cpu_us_per_request: cpu })}\n`,
);
