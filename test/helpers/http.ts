import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { TestApp } from './app.js';

export interface TestServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

/** The test app served on a free port, for clients that speak real HTTP (such as the Retraced client). */
export async function startTestServer(t: TestApp): Promise<TestServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: t.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Clients keep connections alive; close them rather than wait for their timeout.
      server.closeAllConnections();
      await closed;
    },
  };
}
