// Issue 17, item 8: a person erased with every proof intact. Events of several subjects go in over
// HTTP on a past day that is then sealed into the archive, and today; one subject is erased. Then
// a full pg_dump and the archive folder hold none of its values, the others read back and verify,
// and every verifier passes: verify=true, the scheduled job, `auditledger verify`, proofs and
// `auditledger verify-archive`. The erasure event proves by inclusion; a hold refuses; a repeat
// answers with the same receipts.
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, mkdtemp, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { dueThrough, runSeal } from '../../src/jobs/seal.js';
import { verifyAllChains } from '../../src/jobs/verify.js';
import { encodeSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { ensurePartitions } from '../../src/store/partitions.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestServer, type TestServer } from '../helpers/http.js';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });
const run = promisify(execFile);

/** Each subject's personal values (name, href, source IP, and its name as a target person): strings found nowhere else. */
const SUBJECTS = {
  alice: { name: 'Alice Qzerasure-Liddell', href: 'https://example.com/u/alice-qz7', ip: '198.18.7.71', target: 'Alice Qz Target-Name' },
  bob: { name: 'Bob Qzkept-Builder', href: 'https://example.com/u/bob-qz8', ip: '198.18.8.82', target: 'Bob Qz Target-Name' },
  carol: { name: 'Carol Qzkept-Danvers', href: 'https://example.com/u/carol-qz9', ip: '198.18.9.93', target: 'Carol Qz Target-Name' },
} as const;
type Subject = keyof typeof SUBJECTS;
const valuesOf = (subject: Subject) => Object.values(SUBJECTS[subject]);

/** An event of `actor` on `target` (a person): three personal values of the actor's, one of the target's. */
function event(actor: Subject, target: Subject, action: string) {
  const a = SUBJECTS[actor];
  return {
    action,
    actor: { id: actor, name: a.name, href: a.href },
    target: { id: target, type: 'user', name: SUBJECTS[target].target },
    source_ip: a.ip,
    group: { id: 'org-1' },
  };
}

/**
 * A pg_dump that can dump the test server (its major version at least the server's), or why
 * there is none. CI runs Debian's PostgreSQL with its pg_dump; the embedded server is newer than
 * Debian's client.
 */
async function findPgDump(url: string): Promise<{ bin?: string; reason?: string }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  await client.end();
  const server = Math.floor(Number(rows[0]!.v) / 10000);
  const candidates = existsSync('/usr/lib/postgresql') ? (await readdir('/usr/lib/postgresql')).map((v) => path.join('/usr/lib/postgresql', v, 'bin', 'pg_dump')) : [];
  for (const bin of [...candidates, 'pg_dump']) {
    const version = await run(bin, ['--version']).then((r) => Number(/(\d+)/.exec(r.stdout.replace(/^\D+/, ''))?.[1]), () => 0);
    if (version >= server) return { bin };
  }
  return { reason: `no pg_dump of PostgreSQL ${server} or later on this machine (set DATABASE_URL to a server of Debian's version, as CI does)` };
}

/** Every file under `dir`, as text. */
async function folderText(dir: string): Promise<string> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((f) => f.isFile());
  const texts = await Promise.all(files.map((f) => readFile(path.join(f.parentPath, f.name), 'latin1')));
  return texts.join('\n');
}

describe('erasing a data subject keeps every chain, checkpoint, bundle and proof verifying', () => {
  let db: TestDatabase;
  let t: TestApp;
  let server: TestServer;
  let folder: string;
  let clock = Date.now() - 9 * DAY;
  const chains: Record<'production' | 'staging', { id: string; token: string }> = {} as never;
  let projectId: string;
  let erasure: { chains: { environment_id: string; receipt: { id: string; seq: number } }[] };

  const call = async (method: string, route: string, token: string, body?: unknown) => {
    const res = await fetch(`${server.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const json = async (method: string, route: string, token: string, body?: unknown, status = 200) => {
    const res = await call(method, route, token, body);
    expect(res.status, res.text).toBe(status);
    return JSON.parse(res.text);
  };
  const checkpoint = () => runCheckpoints({ db: db.pools.owner, archive: new LocalArchive(folder), key: t.keyring.current, origin: t.keyring.origin, log });

  beforeAll(async () => {
    db = await createTestDatabase();
    folder = await mkdtemp(path.join(os.tmpdir(), 'auditledger-erasure-archive-'));
    t = await createTestApp(db, {}, () => clock, new LocalArchive(folder));
    server = await startTestServer(t);
    await ensurePartitions(db.pools.owner, new Date(clock), 1);

    const project = await json('POST', '/v1/projects', t.adminToken, { name: 'erasure-e2e' }, 201);
    projectId = project.id;
    for (const name of ['production', 'staging'] as const) {
      const env = await json('POST', `/v1/projects/${projectId}/environments`, t.adminToken, { name }, 201);
      const token = await json('POST', `/v1/projects/${projectId}/environments/${env.id}/tokens`, t.adminToken, { name: 'app' }, 201);
      chains[name] = { id: env.id, token: token.token };
    }
    // A past day, sealed into the archive: every subject as actor and as target.
    const pairs: [Subject, Subject][] = [['alice', 'bob'], ['bob', 'alice'], ['carol', 'alice'], ['alice', 'carol'], ['bob', 'carol']];
    await json('POST', '/v1/events', chains.production.token, { events: pairs.map(([a, b], i) => event(a, b, `past.${i}`)) }, 201);
    await json('POST', '/v1/events', chains.staging.token, event('alice', 'alice', 'past.self'), 201);
    await checkpoint();
    const report = await runSeal({ db: db.pools.owner, archive: new LocalArchive(folder), keyring: t.keyring, log }, dueThrough(Date.now(), 7));
    expect(report).toMatchObject({ bundles: 2, events: 6, failed: [] });
    // Today, not sealed.
    clock = Date.now();
    await ensurePartitions(db.pools.owner, new Date(clock), 1);
    for (const [a, b] of pairs) await json('POST', '/v1/events', chains.production.token, event(a, b, 'today'), 201);
    await json('POST', '/v1/events', chains.staging.token, event('bob', 'alice', 'today'), 201);

    // Read (and verify against the sealed bundles) first: whatever a read keeps in memory is kept.
    for (const chain of Object.values(chains)) {
      const page = await json('GET', '/v1/events?limit=1000&verify=true', chain.token);
      expect(page.verification.ok).toBe(true);
      expect(JSON.stringify(page)).toContain(SUBJECTS.alice.name);
    }
    erasure = await json('POST', `/v1/projects/${projectId}/erasures`, t.adminToken, { subject: 'alice' }, 201);
    await checkpoint();
  });
  afterAll(async () => {
    await server?.close();
    await t?.close();
    await db?.drop();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('erases in every chain and says how many values', () => {
    // Production: alice acts in 2 + 2 events (3 values each) and is the target of 2 + 2 (1 each); staging: 1 + 1 as both, 1 as target.
    expect(erasure.chains.map((c) => [c.environment_id, (c as unknown as { values_erased: number }).values_erased])).toEqual([
      [chains.production.id, 16],
      [chains.staging.id, 5],
    ]);
  });

  it('a full pg_dump of the database holds none of its values, and the others\' (so the dump is complete)', async (context) => {
    const { bin, reason } = await findPgDump(db.superuserUrl);
    if (!bin) {
      console.warn(`skipping the pg_dump check: ${reason}`);
      context.skip();
    }
    const { stdout } = await run(bin!, ['--dbname', db.superuserUrl, '--format', 'plain'], { maxBuffer: 256 * 1024 * 1024 });
    for (const value of valuesOf('alice')) expect(stdout).not.toContain(value);
    for (const value of [...valuesOf('bob'), ...valuesOf('carol')]) expect(stdout).toContain(value);
  });

  it('the archive folder never held any clear value: bundles, checkpoints and tiles hold commitments', async () => {
    const text = await folderText(folder);
    expect(text).toContain('"commitments"');
    for (const value of [...valuesOf('alice'), ...valuesOf('bob'), ...valuesOf('carol')]) expect(text).not.toContain(value);
  });

  it('reads show the others\' values, checked, and its values as erased markers, in every route that returns events', async () => {
    const page = await json('GET', '/v1/events?limit=1000&verify=true', chains.production.token);
    expect(page.verification).toMatchObject({ ok: true, failures: [] });
    const text = JSON.stringify(page);
    for (const value of valuesOf('alice')) expect(text).not.toContain(value);
    const bobActs = page.events.find((e: { event: { action: string; actor: { id: string } } }) => e.event.action === 'past.1');
    expect(bobActs.event).toMatchObject({ actor: { name: SUBJECTS.bob.name, href: SUBJECTS.bob.href }, source_ip: SUBJECTS.bob.ip, target: { name: { erased: true } } });
    const exported = await call('GET', '/v1/events/export', chains.production.token);
    expect(exported.status).toBe(200);
    const retraced = await call('POST', `/publisher/v1/project/${projectId}/graphql`, chains.production.token, {
      query: '{ search(query: "action:past.*", first: 50) { edges { node { action actor { id name } target { id name } } } } }',
    });
    for (const read of [exported.text, retraced.text]) for (const value of valuesOf('alice')) expect(read).not.toContain(value);
    for (const read of [exported.text, retraced.text]) expect(read).toContain(SUBJECTS.bob.name);
  });

  it('the scheduled verification, `auditledger verify` and verify-archive all pass', async () => {
    const runs = await verifyAllChains({ db: db.pools.owner, verifiers: [t.keyring.current], log }, 'full');
    expect(runs.map((r) => [r.ok, r.first_failure])).toEqual([
      [true, null],
      [true, null],
    ]);
    const keyFile = path.join(folder, '..', `erasure-e2e-key-${process.pid}`);
    await writeFile(keyFile, `${encodeSigningKey(t.keyring.current)}\n`, { mode: 0o600 });
    try {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-erasure-cli-'));
      const verify = runCli(['verify'], { DATABASE_URL: db.ownerUrl, AUDITLEDGER_SIGNING_KEY_FILE: keyFile, AUDITLEDGER_DATA_DIR: dataDir });
      expect((await verify.exited).code, verify.output()).toBe(0);
      expect(verify.output()).toContain('2/2 chains valid');
      await rm(dataDir, { recursive: true, force: true });
    } finally {
      await rm(keyFile, { force: true });
    }
    const archived = await verifyArchive(new LocalArchive(folder), { verifiers: [t.keyring.current] });
    expect(archived).toMatchObject({ ok: true, failures: [], bundles: { valid: 2, total: 2 } });
    const cli = runCli(['verify-archive', folder, '--key', verifierKey(t.keyring.current)], {});
    expect((await cli.exited).code, cli.output()).toBe(0);
  });

  it('the erasure event, and an erased event sealed before it, prove by inclusion in a signed checkpoint, which extends the one before the erasure', async () => {
    const receipt = erasure.chains[0]!.receipt;
    const proofFile = path.join(folder, '..', `erasure-e2e-proof-${process.pid}.json`);
    try {
      for (const id of [receipt.id, (await json('GET', '/v1/events?limit=1', chains.production.token)).events[0].id]) {
        const proof = await json('GET', `/v1/events/${id}/proof`, chains.production.token);
        await writeFile(proofFile, JSON.stringify(proof));
        const cli = runCli(['verify-proof', proofFile, '--key', verifierKey(t.keyring.current)], {});
        expect((await cli.exited).code, cli.output()).toBe(0);
        expect(cli.output()).toMatch(/is included in the signed checkpoint/);
      }
      // The checkpoint signed before the erasure (at the sealed day's 5 events) is extended by the latest.
      const consistency = await json('GET', '/v1/consistency?from=5', chains.production.token);
      expect(consistency.checkpoints.from).not.toBeNull();
      await writeFile(proofFile, JSON.stringify(consistency));
      const cli = runCli(['verify-proof', proofFile, '--key', verifierKey(t.keyring.current)], {});
      expect((await cli.exited).code, cli.output()).toBe(0);
      expect(cli.output()).toMatch(/extends the one at size 5/);
    } finally {
      await rm(proofFile, { force: true });
    }
    const erased = await json('GET', `/v1/events/${receipt.id}?verify=true`, chains.production.token);
    expect(erased.verification.ok).toBe(true);
    expect(erased.event).toMatchObject({ action: 'auditledger.subject.erased', metadata: { values_erased: 16 } });
    expect(erased.event.target.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a repeat answers with the same receipts and appends nothing; a hold refuses another subject\'s erasure', async () => {
    const head = await json('GET', '/v1/chain', chains.production.token);
    expect(await json('POST', `/v1/projects/${projectId}/erasures`, t.adminToken, { subject: 'alice' })).toEqual(erasure);
    expect((await json('GET', '/v1/chain', chains.production.token)).seq).toBe(head.seq);

    const hold = await json('POST', `/v1/projects/${projectId}/holds`, t.adminToken, { subject: 'bob', reason: 'case 17' }, 201);
    const refused = await call('POST', `/v1/projects/${projectId}/erasures`, t.adminToken, { subject: 'bob' });
    expect(refused.status).toBe(409);
    expect(JSON.parse(refused.text).error).toMatchObject({ code: 'legal_hold', details: { hold: hold.id, reason: 'case 17' } });
    const page = await json('GET', '/v1/events?limit=1000&verify=true', chains.production.token);
    expect(JSON.stringify(page)).toContain(SUBJECTS.bob.name);
    expect(page.verification.ok).toBe(true);
  });
});
