import { timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's Prometheus metrics (SPEC §16), served at GET /metrics. Instruments are kept
 * per process, as Prometheus expects of one target; what is read at scrape time (pool,
 * caches, outbox, migrations) comes from the sources each running app registers.
 */
export const registry = new Registry();
let processMetrics = false;

/** Seconds from a request's arrival to its answer, by route template, method and status class. */
const httpDuration = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP request duration by route template, method and status class',
  labelNames: ['route', 'method', 'status_class'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const loginOutcomes = new Counter({
  name: 'auth_logins_total',
  help: 'Logins by outcome (succeeded, bad_password, bad_passkey, bad_mfa_factor, unknown_user, locked, inactive, email_not_verified)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const webhookDeliveries = new Counter({
  name: 'webhook_deliveries_total',
  help: 'Webhook delivery attempts by outcome (succeeded, retrying, failed: the last attempt failed)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const eventsDispatched = new Counter({
  name: 'events_dispatched_total',
  help: 'Outbox events handed to webhooks and realtime subscribers',
  registers: [registry],
});

export const eventDispatchLag = new Histogram({
  name: 'events_dispatch_lag_seconds',
  help: 'Seconds from an event being written to its dispatch',
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [registry],
});

export const poolAcquire = new Histogram({
  name: 'db_pool_acquire_seconds',
  help: 'Seconds a statement or transaction waited for a pooled PostgreSQL connection',
  buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  registers: [registry],
});

/** What a running app lets the scrape read: its pool, its local cache's counts, the outbox and the migrations. */
export interface MetricsSource {
  pool(): { total: number; idle: number; waiting: number };
  cacheCounts(): ReadonlyMap<string, { hits: number; misses: number }>;
  /** Seconds the oldest due outbox work has waited (0 when none). */
  outboxLag(): Promise<number>;
  migrationStates(): Promise<Record<string, number>>;
}

const sources = new Set<MetricsSource>();

/** Registers a running app's source; returns its removal. */
export function addMetricsSource(source: MetricsSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

new Gauge({
  name: 'db_pool_connections',
  help: 'PostgreSQL pool connections by state (total, idle, waiting: callers queued for one)',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    const sum = { total: 0, idle: 0, waiting: 0 };
    for (const s of sources) for (const [k, v] of Object.entries(s.pool())) sum[k as keyof typeof sum] += v;
    for (const [state, n] of Object.entries(sum)) this.set({ state }, n);
  },
});

new Counter({
  name: 'cache_requests_total',
  help: 'In-process cache reads by cache (the key prefix) and result (hit, miss)',
  labelNames: ['cache', 'result'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const s of sources) {
      for (const [cache, c] of s.cacheCounts()) {
        this.inc({ cache, result: 'hit' }, c.hits);
        this.inc({ cache, result: 'miss' }, c.misses);
      }
    }
  },
});

new Gauge({
  name: 'events_outbox_lag_seconds',
  help: 'Seconds the oldest due outbox work (events to dispatch, deliveries to attempt) has waited',
  registers: [registry],
  async collect() {
    let lag = 0;
    for (const s of sources) lag = Math.max(lag, await s.outboxLag());
    this.set(lag);
  },
});

new Gauge({
  name: 'tenant_migrations',
  help: 'Tenant schemas by migration state (pending, running, done, failed)',
  labelNames: ['state'] as const,
  registers: [registry],
  async collect() {
    // Every source reads the same database in practice; the first one answers.
    const first = sources.values().next();
    if (first.done) return;
    for (const [state, n] of Object.entries(await first.value.migrationStates())) this.set({ state }, n);
  },
});

const tenantRequests = new Counter({
  name: 'http_requests_by_tenant_total',
  help: 'Requests of the busiest tenants (METRICS_TENANT_LABELS of them; the others as "other")',
  labelNames: ['tenant'] as const,
  registers: [registry],
});

/** Per-tenant request counts for the opt-in top-N label: bounded, the least counted dropped first. */
class TopTenants {
  private readonly counts = new Map<string, number>();
  private other = 0;

  constructor(private readonly n: number) {}

  add(tenant: string): void {
    const count = this.counts.get(tenant);
    if (count !== undefined) this.counts.set(tenant, count + 1);
    else if (this.counts.size < this.n * 10) this.counts.set(tenant, 1);
    else this.other++;
  }

  /** The top n and the rest, as the counter's values. */
  publish(): void {
    tenantRequests.reset();
    const sorted = [...this.counts].sort((a, b) => b[1] - a[1]);
    let other = this.other;
    sorted.forEach(([tenant, count], i) => (i < this.n ? tenantRequests.inc({ tenant }, count) : (other += count)));
    if (other > 0) tenantRequests.inc({ tenant: 'other' }, other);
  }
}

export interface RequestMetricsOptions {
  /** Record request durations (METRICS, default true). */
  readonly enabled: boolean;
  /** The busiest tenants labelled in http_requests_by_tenant_total; 0: none (METRICS_TENANT_LABELS). */
  readonly tenantLabels: number;
}

/** Records requests into the histogram; the label children are kept per route, method and status. */
export class RequestMetrics {
  private readonly children = new Map<string, Histogram.Internal<'route' | 'method' | 'status_class'>>();
  private readonly top: TopTenants | undefined;

  constructor(readonly options: RequestMetricsOptions) {
    // Process metrics (CPU, memory, event-loop delay, GC) once per process, when an app serves them.
    if (!processMetrics) {
      processMetrics = true;
      collectDefaultMetrics({ register: registry });
    }
    this.top = options.tenantLabels > 0 ? new TopTenants(options.tenantLabels) : undefined;
  }

  observe(route: string, method: string, status: number, seconds: number, tenant: string | undefined): void {
    if (!this.options.enabled) return;
    const statusClass = status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : '2xx';
    const key = `${method} ${statusClass} ${route}`;
    let child = this.children.get(key);
    if (!child) {
      child = httpDuration.labels({ route, method, status_class: statusClass });
      this.children.set(key, child);
    }
    child.observe(seconds);
    if (tenant !== undefined) this.top?.add(tenant);
  }

  /** The Prometheus text exposition. */
  async exposition(): Promise<string> {
    this.top?.publish();
    return registry.metrics();
  }
}

export const METRICS_CONTENT_TYPE = registry.contentType;

/** Whether `authorization` carries the metrics token (compared in constant time). */
export function metricsAuthorized(token: string | undefined, authorization: string | undefined): boolean {
  if (token === undefined) return true;
  const given = Buffer.from(/^Bearer (.+)$/i.exec(authorization ?? '')?.[1] ?? '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
