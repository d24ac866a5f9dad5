import { createServer, type AddressInfo } from 'node:net';

/** A port free now on 127.0.0.1 (to fix PUBLIC_URL, or a server's port, before it listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
