import { register } from 'node:module';
import { SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * OpenTelemetry traces (SPEC §16), on when OTEL_EXPORTER_OTLP_ENDPOINT (or its traces-only
 * form) is set: spans for HTTP requests (@fastify/otel), SQL statements (the pg
 * instrumentation: the statement text, never values) and password hashing. Off, nothing is
 * loaded and every helper here is one boolean test.
 */
let enabled = false;

export function tracingEnabled(): boolean {
  return enabled;
}

/** Starts the SDK before pg and Fastify are loaded; returns its shutdown, or undefined when tracing is off. */
export async function startTracing(env: NodeJS.ProcessEnv = process.env): Promise<(() => Promise<void>) | undefined> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  // ES modules are instrumented through a loader hook (import-in-the-middle).
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  // Traces only: metrics are Prometheus' (/metrics), logs go to stdout.
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const [{ NodeSDK }, { PgInstrumentation }, { FastifyOtelInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-pg'),
    import('@fastify/otel'),
  ]);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'system-service',
    instrumentations: [
      // SQL spans carry the statement's text (placeholders, never values); none outside a request.
      new PgInstrumentation({ requireParentSpan: true }),
      // Health probes and scrapes would drown the traces that matter.
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (route) => ['/health', '/ready', '/metrics'].includes(route.url) }),
    ],
  });
  sdk.start();
  enabled = true;
  return async () => {
    enabled = false;
    await sdk.shutdown();
  };
}

const tracer = () => trace.getTracer('system-service');

/** Runs `fn` in a span named `name` when tracing is on (its failure recorded on the span). */
export function traced<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  return tracer().startActiveSpan(name, async (span) => {
    try {
      return await fn();
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The active trace and span ids, for log lines and problem details; {} when tracing is off or no span is active. */
export function traceIds(): { trace_id?: string; span_id?: string } {
  if (!enabled) return {};
  const span = trace.getActiveSpan()?.spanContext();
  return span ? { trace_id: span.traceId, span_id: span.spanId } : {};
}
