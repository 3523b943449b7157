import { createServer } from 'node:net';
import { runCli, type RunningCli } from './cli.js';

/** The line `auditledger serve` prints once it listens; groups: the URL and the port. */
export const LISTENING = /auditledger listening on (http:\/\/127\.0\.0\.1:(\d+))/;

/** `auditledger serve` as a real process; resolves once it listens. */
export async function serveProcess(env: Record<string, string>): Promise<{ cli: RunningCli; url: string; port: string }> {
  const cli = runCli(['serve'], { PORT: '0', ...env });
  const [, url, port] = await cli.waitFor(LISTENING);
  return { cli, url: url!, port: port! };
}

/** A fresh chain on a running server: a project, an environment and a token, created over HTTP. */
export async function tokenOverHttp(url: string, adminToken: string): Promise<{ token: string; projectId: string; environmentId: string }> {
  const post = async (route: string, body: unknown) => {
    const res = await fetch(`${url}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`POST ${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, string>;
  };
  const project = await post('/v1/projects', { name: `p-${Math.random().toString(36).slice(2)}` });
  const env = await post(`/v1/projects/${project.id}/environments`, { name: 'prod' });
  const { token } = await post(`/v1/projects/${project.id}/environments/${env.id}/tokens`, { name: 'app' });
  return { token: token!, projectId: project.id!, environmentId: env.id! };
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
