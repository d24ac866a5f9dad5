import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childServiceEnv, createTestApp, type TestApp } from './support/app.js';
import { exited, startTs } from './support/process.js';
import { PASSWORD, seedTenant } from './support/tenants.js';

/*
 * The service as a real process with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local OTLP/HTTP
 * receiver (JSON encoding): the spans of a request arrive linked to the caller's trace, with
 * SQL and argon2 spans as its descendants, and the trace id in log lines and problem details.
 */

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
const spans: OtlpSpan[] = [];
let receiver: Server;
let endpoint = '';
let t: TestApp;
let service: { child: ChildProcess; output: () => string; match: RegExpMatchArray };
let base = '';

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const data = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const r of data.resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  t = await createTestApp();
  await seedTenant(t, 'tra');
  await seedTenant(t, 'trb');
  service = await startTs(
    'src/main.ts',
    childServiceEnv(t.db.url, {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_SERVICE_NAME: 'system-service-test',
    }),
    LISTENING,
  );
  base = `http://127.0.0.1:${service.match[1]}`;
}, 120_000);

afterAll(async () => {
  if (service) {
    service.child.kill('SIGTERM');
    await exited(service.child);
  }
  receiver?.close();
  await t?.close();
});

/** Waits until the spans of `traceId` include one named `name`. */
async function spansOf(traceId: string, name: RegExp): Promise<OtlpSpan[]> {
  for (let i = 0; i < 200; i++) {
    const found = spans.filter((s) => s.traceId === traceId);
    if (found.some((s) => name.test(s.name))) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${name} span in trace ${traceId}; spans: ${spans.map((s) => `${s.traceId.slice(0, 6)} ${s.name}`).join(', ')}`);
}

/** Whether `span` descends from the span `ancestorId` within `all`. */
function descendsFrom(span: OtlpSpan, ancestorId: string, all: OtlpSpan[]): boolean {
  for (let p = span.parentSpanId; p; p = all.find((s) => s.spanId === p)?.parentSpanId) if (p === ancestorId) return true;
  return false;
}

const attribute = (span: OtlpSpan, key: string) => span.attributes?.find((a) => a.key === key)?.value;

describe('OpenTelemetry traces', () => {
  it('continue the caller\'s trace: the request span, its SQL and argon2 spans, linked parent to child', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const res = await fetch(`${base}/api/v1/tenants/tra/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpan}-01` },
      body: JSON.stringify({ email: 'admin@tra.example', password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    // The request span ends last (after the answer is sent).
    const trace = await spansOf(traceId, /^request$/);
    const all = spans.filter((s) => s.traceId === traceId);
    const request = all.find((s) => s.name === 'request');
    expect(request, all.map((s) => s.name).join(', ')).toBeDefined();
    expect(request!.parentSpanId).toBe(callerSpan);
    const sqlSpans = all.filter((s) => s.name.startsWith('pg.query'));
    expect(sqlSpans.length).toBeGreaterThan(0);
    for (const s of [...sqlSpans, all.find((x) => x.name === 'argon2.verify')!]) expect(descendsFrom(s, request!.spanId, all), s.name).toBe(true);
    // Statements, never values: neither the email nor the password is in any span.
    const text = JSON.stringify(trace);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('admin@tra.example');
    for (const s of sqlSpans) expect(attribute(s, 'db.query.text')?.stringValue).toEqual(expect.any(String));
    // The log lines of the request carry its trace.
    const lines = service.output().split('\n').filter((l) => l.includes('"msg":"request"') && l.includes('/auth/login'));
    expect(lines.at(-1)).toContain(`"trace_id":"${traceId}"`);
  });

  it('name the trace in problem details and in the refused request\'s log line', async () => {
    const res = await fetch(`${base}/api/v1/tenants/trb/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@trb.example', password: 'not the password' }) });
    expect(res.status).toBe(401);
    const problem = (await res.json()) as { request_id: string; trace_id: string };
    expect(problem.trace_id).toMatch(/^[0-9a-f]{32}$/);
    const trace = await spansOf(problem.trace_id, /^request$/);
    expect(trace.find((s) => s.name === 'request')!.parentSpanId ?? '').toBe('');
    const line = service.output().split('\n').find((l) => l.includes(`"reqId":"${problem.request_id}"`) && l.includes('"msg":"request"'));
    expect(line).toContain(`"trace_id":"${problem.trace_id}"`);
  });
});
