import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

/** A webhook receiver on 127.0.0.1: records every request; `answer` decides each status (default 200). */
export class Receiver {
  readonly got: Received[] = [];
  answer: (n: number, r: Received) => number = () => 200;
  /** Milliseconds before each answer. */
  delayMs = 0;
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const r = { headers: req.headers, body, at: Date.now() };
        this.got.push(r);
        res.statusCode = this.answer(this.got.length, r);
        setTimeout(() => res.end('ok'), this.delayMs);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  events(): { id: string; type: string; tenant_slug: string; data: Record<string, unknown> }[] {
    return this.got.map((r) => JSON.parse(r.body));
  }

  async until(test: () => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!test()) {
      if (Date.now() > end) throw new Error(`timed out; got ${this.got.length}: ${this.got.map((r) => r.body.slice(0, 80)).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
