/**
 * The load generator, as a child process of the harness (`bench/run.ts`): autocannon against one
 * URL, a short unmeasured run first, then the measured one; prints the result as JSON. In its own
 * process, its speed does not depend on what the harness did before (provisioning thousands of
 * schemas leaves the harness with a large heap).
 */
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  seconds: number;
  connections: number;
  /** `new-user`: each request creates a user with a fresh email; `refresh`: each follows a rotation chain. */
  kind?: 'new-user' | 'refresh';
  refreshTokens?: string[];
}

const spec = JSON.parse(process.argv[2]!) as LoadSpec;

function requestsOf(): autocannon.Request[] | undefined {
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
  return undefined;
}

// Built once: the refresh chain carries over from the warm-up run to the measured one.
const requests = requestsOf();
const run = (duration: number) =>
  autocannon({
    url: spec.url,
    method: spec.method as 'GET',
    headers: { 'content-type': 'application/json', ...spec.headers },
    body: spec.body,
    requests,
    connections: spec.connections,
    duration,
  });

// A short unmeasured run first, so both sides are measured warm (JIT, caches, pool).
await run(1);
const result = await run(spec.seconds);
process.stdout.write(
  `${JSON.stringify({ rps: Math.round(result.requests.average), p50_ms: result.latency.p50, p99_ms: result.latency.p99, errors: result.errors + result.non2xx })}\n`,
);
