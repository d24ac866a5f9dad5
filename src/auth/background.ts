/** Where a background task's failure is reported (the app's logger once the routes are registered). */
export type BackgroundErrorHandler = (error: unknown, task: string, requestId?: string | null) => void;

/**
 * Work done after the answer has left (a password-reset request's lookup, token and mail; a
 * purge): each task starts on the next turn of the event loop, its failure is reported, never
 * unhandled, and `settled()` waits for every task started so far (graceful shutdown, tests).
 */
export class BackgroundWork {
  private readonly pending = new Set<Promise<void>>();
  private onError: BackgroundErrorHandler = (error, task) => console.error(`background task ${task} failed`, error);

  /** Reports failures through `handler` from now on. */
  reportTo(handler: BackgroundErrorHandler): void {
    this.onError = handler;
  }

  run(task: string, work: () => Promise<void>): void {
    const done: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .catch((error: unknown) => this.report(error, task))
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Reports a failure of work done outside a request, or after its answer (`requestId`: that request). */
  report(error: unknown, task: string, requestId?: string | null): void {
    try {
      this.onError(error, task, requestId);
    } catch {
      // A failing reporter must not become an unhandled rejection.
    }
  }

  /** Resolves once every task started before and during the wait has finished. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  get size(): number {
    return this.pending.size;
  }
}
