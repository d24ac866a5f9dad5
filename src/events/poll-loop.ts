import { afterEveryCommit } from '../db/database.js';
import { written } from './outbox.js';

/**
 * Runs `pass` over and over: again at once when it found work or something woke the loop
 * meanwhile, else after `pollMs`. A commit of this process that wrote events wakes it (other
 * instances' events are found by the poll).
 */
export class PollLoop {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private seen = written.events;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly pollMs: number,
    /** One look for work; true when it did some (look again at once). */
    private readonly pass: () => Promise<boolean>,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopListening = afterEveryCommit(() => {
      if (written.events !== this.seen) {
        this.seen = written.events;
        this.wake();
      }
    });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopListening?.();
    this.wake();
    await this.loop;
  }

  /** Looks for work now instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.woken = false;
      let busy = false;
      try {
        busy = await this.pass();
      } catch (error) {
        this.onError(error);
      }
      if (!this.running) break;
      if (busy || this.woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }
}
