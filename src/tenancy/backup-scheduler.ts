import { sql, type Kysely } from 'kysely';
import { LOCK_CLASS } from '../db/platform.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { TenantLifecycle } from './lifecycle.js';

export interface BackupSchedulerOptions {
  /** A tenant is backed up when its newest backup is older than this. */
  readonly everyMs: number;
  /** Backups older than this many days go (each tenant keeps its newest). */
  readonly retentionDays: number;
  readonly onError?: (error: unknown, tenant?: string) => void;
}

/**
 * Backs up every active tenant whose newest backup is older than the schedule, and prunes
 * old ones. Instances share the work without a coordinator: each claims one due tenant at a
 * time with a transaction-scoped advisory lock held for the length of its backup, then looks
 * again inside the lock, so no tenant is backed up twice for one period.
 */
export class BackupScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Tenants another instance holds during this pass. */
  private skipped: string[] = [];

  constructor(
    private readonly db: Kysely<PlatformDatabase>,
    private readonly lifecycle: TenantLifecycle,
    private readonly options: BackupSchedulerOptions,
  ) {}

  start(): void {
    const tick = Math.min(60_000, Math.max(250, Math.floor(this.options.everyMs / 4)));
    this.timer = setInterval(() => void this.runOnce(), tick);
    this.timer.unref();
    void this.runOnce();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One pass: every due tenant, then retention. Returns when done (a pass already running is joined). */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    try {
      const failed: string[] = [];
      this.skipped = [];
      while (!this.stopped && (await this.backUpOneDue(failed)));
      if (!this.stopped) await this.lifecycle.prune(this.options.retentionDays);
    } catch (error) {
      this.options.onError?.(error);
    }
  }

  /** Backs up one due tenant, if there is one this instance can claim (not one that `failed` this pass). */
  private async backUpOneDue(failed: string[]): Promise<boolean> {
    const due = sql<boolean>`NOT EXISTS (
      SELECT 1 FROM shared.tenant_backups b WHERE b.tenant_id = t.id AND b.created_at > now() - make_interval(secs => ${this.options.everyMs / 1000}))`;
    const candidates = await sql<{ id: string; slug: string }>`
      SELECT t.id, t.slug FROM shared.tenants t
      JOIN shared.tenant_schemas s ON s.schema_name = t.schema_name AND s.status = 'ready'
      WHERE t.status = 'active' AND ${due} AND NOT (t.id = ANY(${[...failed, ...this.skipped]}::uuid[]))
      ORDER BY t.created_at LIMIT 20`.execute(this.db);
    if (candidates.rows.length === 0) return false;
    // A tenant is claimed by a transaction-scoped advisory lock held for its backup: no row
    // lock, so suspending or deleting it meanwhile does not wait.
    for (const tenant of candidates.rows) {
      const claimed = await this.db.transaction().execute(async (trx) => {
        const lock = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LOCK_CLASS.tenantBackup}, hashtext(${tenant.id})) AS ok`.execute(trx);
        if (!lock.rows[0]!.ok) return false;
        // Another instance may have finished this tenant's backup just before the lock was ours.
        const still = await sql<{ due: boolean }>`SELECT ${due} AS due FROM shared.tenants t WHERE t.id = ${tenant.id}`.execute(trx);
        if (!still.rows[0]?.due) return true;
        try {
          await this.lifecycle.backup(tenant.id, 'scheduled');
        } catch (error) {
          this.options.onError?.(error, tenant.slug);
          failed.push(tenant.id);
        }
        return true;
      });
      if (claimed) return true;
      this.skipped.push(tenant.id);
    }
    return true;
  }
}
