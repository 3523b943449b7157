// The HTTP ceilings of `npm run bench`: a server on a worker thread that does for a POST only what
// no server can skip (read the body, parse its JSON, answer 201 with a receipt-sized JSON body),
// so the same load against it shows what this machine's HTTP alone allows. workerData picks it
// written on node:http, or on Hono and @hono/node-server as the service is.
// Posts {port} to its parent once it listens; answers 'usage' with {cpuMs, requests}.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

export type BareServerKind = 'node:http' | 'hono';

let answered = 0;

/** This thread's CPU ms (utime + stime, in 10 ms ticks), from Linux's /proc/thread-self. */
function threadCpuMs(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const [utime, stime] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 13).map(Number) as [number, number];
  return (utime + stime) * 10;
}

// Asked 'usage': the CPU this server's thread has used and the requests it has answered, so that
// the bench can set its CPU per request beside the service's CPU per event.
parentPort!.on('message', (message) => {
  if (message === 'usage') parentPort!.postMessage({ cpuMs: threadCpuMs(), requests: answered });
});

const listening = (server: { address(): AddressInfo | string | null }) => () =>
  parentPort!.postMessage({ port: (server.address() as AddressInfo).port });

function answer(event: { action?: unknown }): string {
  answered += 1;
  const receipt = { id: String(event.action), seq: 0, hash: '0'.repeat(64), received_at: new Date().toISOString() };
  return JSON.stringify({ events: [receipt], tree_size: 0, root: receipt.hash });
}

if ((workerData as BareServerKind) === 'hono') {
  const app = new Hono().post('/v1/events', async (c) => c.body(answer(await c.req.json()), 201, { 'content-type': 'application/json' }));
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => listening(server)());
} else {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = answer(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { action?: unknown });
      response.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      response.end(body);
    });
  });
  server.listen(0, '127.0.0.1', listening(server));
}
