import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { checkpointKey } from '../../src/archive/layout.js';
import { runCheckpoints, type CheckpointDeps } from '../../src/jobs/checkpoints.js';
import { chainOrigin, openCheckpoint, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { encodeEvent, GENESIS_PREV } from '../../src/ledger/event.js';
import { generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { consistencyProof, inclusionProof } from '../../src/ledger/proof.js';
import { merkleRoot } from '../../src/ledger/tree.js';
import { verifyConsistencyDocument, verifyInclusionDocument } from '../../src/ledger/verify-proof.js';
import { leaves } from '../../src/store/checkpoints.js';
import { runCli } from '../helpers/cli.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

describe('checkpoints and proofs', () => {
  let db: TestDatabase;
  let t: TestApp;
  let dir: string;
  let job: CheckpointDeps;
  let logged: string[];

  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp(db);
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-proofs-'));
    logged = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    job = { db: db.pools.owner, archive: new LocalArchive(dir), key: t.keyring.current, origin: t.keyring.origin, log };
  });
  afterAll(async () => {
    await t.close();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const append = async (tenant: Tenant, n: number, prefix = 'e') => {
    const events = Array.from({ length: n }, (_, i) => ({ action: `${prefix}.${i}` }));
    const res = await t.request('POST', '/v1/events', { token: tenant.token, body: { events } });
    return (await res.json()).events as { id: string; seq: number }[];
  };
  const get = async (tenant: Tenant, url: string) => {
    const res = await t.request('GET', url, { token: tenant.token });
    return { status: res.status, body: await res.json() };
  };
  const vkey = () => verifierKey(t.keyring.current);

  it('GET /v1/keys lists the current key without auth', async () => {
    const res = await t.request('GET', '/v1/keys');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      origin: t.keyring.origin,
      keys: [{ name: 'test-ledger', key_id: expect.stringMatching(/^[0-9a-f]{8}$/), vkey: vkey(), status: 'current' }],
    });
  });

  describe('on a healthy chain', () => {
    let tenant: Tenant;
    let events: { id: string; seq: number }[];
    beforeAll(async () => {
      tenant = await createTenant(t, 'healthy');
      events = await append(tenant, 10);
    });

    it('the job signs a checkpoint of each moved chain, archives it, and signs nothing when nothing moved', async () => {
      expect((await get(tenant, '/v1/checkpoints/latest')).status).toBe(404);
      expect(await runCheckpoints(job)).toBeGreaterThanOrEqual(1);
      expect(await runCheckpoints(job)).toBe(0);
      const { body } = await get(tenant, '/v1/checkpoints/latest');
      expect(body.tree_size).toBe(10);
      const { checkpoint } = openCheckpoint(body.note, [t.keyring.current], chainOrigin(t.keyring.origin, tenant.projectId, tenant.environmentId));
      expect(checkpoint.size).toBe(10);
      expect(Buffer.from(checkpoint.root).toString('hex')).toBe((await get(tenant, '/v1/chain')).body.root);
      const archived = await job.archive!.get(checkpointKey(tenant.projectId, tenant.environmentId, 10));
      expect(archived?.toString()).toBe(body.note);
    });

    it('an inclusion proof round-trips through the API and the offline command', async () => {
      const { status, body } = await get(tenant, `/v1/events/${events[3]!.id}/proof`);
      expect(status).toBe(200);
      expect(body).toMatchObject({ leaf_index: 3, tree_size: 10, checkpoint: expect.stringContaining('\n\n— test-ledger ') });
      expect(verifyInclusionDocument(body, [t.keyring.current])).toMatch(/seq 4\) is included in the signed checkpoint/);

      const file = path.join(dir, 'proof.json');
      await writeFile(file, JSON.stringify(body));
      const ok = runCli(['verify-proof', file, '--key', vkey()], {});
      expect((await ok.exited).code).toBe(0);
      expect(ok.output()).toMatch(/^ok: event .* is included/m);

      await writeFile(file, JSON.stringify({ ...body, leaf_index: 4 }));
      const bad = runCli(['verify-proof', file, '--key', vkey()], {});
      expect((await bad.exited).code).toBe(1);
      expect(bad.output()).toMatch(/^FAILED: /m);

      // The signed note gives the root verified, but a document stating another root is refused.
      const garbage = Buffer.alloc(32, 7).toString('base64');
      await writeFile(file, JSON.stringify({ ...body, root: garbage }));
      const badRoot = runCli(['verify-proof', file, '--key', vkey()], {});
      expect((await badRoot.exited).code).toBe(1);
      const signedRoot = Buffer.from(body.root, 'base64').toString('hex');
      expect(badRoot.output()).toBe(`FAILED: root mismatch: calculated ${signedRoot}, expected ${'07'.repeat(32)}\n`);

      const otherKey = verifierKey(generateSigningKey('someone-else'));
      await writeFile(file, JSON.stringify(body));
      const wrongKey = runCli(['verify-proof', file, '--key', otherKey], {});
      expect((await wrongKey.exited).code).toBe(1);
    });

    it('a consistency proof shows the later checkpoint extends the earlier one', async () => {
      await append(tenant, 5, 'more');
      await runCheckpoints(job);
      const { body } = await get(tenant, '/v1/consistency?from=10&to=15');
      expect(body).toMatchObject({ from: 10, to: 15 });
      expect(verifyConsistencyDocument(body, [t.keyring.current])).toMatch(/size 15 extends the one at size 10/);
      const file = path.join(dir, 'consistency.json');
      await writeFile(file, JSON.stringify(body));
      const cli = runCli(['verify-proof', file, '--key', vkey()], {});
      expect((await cli.exited).code).toBe(0);
      for (const end of ['from', 'to'] as const) {
        await writeFile(file, JSON.stringify({ ...body, roots: { ...body.roots, [end]: Buffer.alloc(32, 7).toString('base64') } }));
        const badRoot = runCli(['verify-proof', file, '--key', vkey()], {});
        expect((await badRoot.exited).code).toBe(1);
        const signedRoot = Buffer.from(body.roots[end], 'base64').toString('hex');
        expect(badRoot.output()).toBe(`FAILED: roots.${end} mismatch: calculated ${signedRoot}, expected ${'07'.repeat(32)}\n`);
      }
      const list = await get(tenant, '/v1/checkpoints?limit=5');
      expect(list.body.checkpoints.map((c: { tree_size: number }) => c.tree_size)).toEqual([15, 10]);
    });

    it('checks proof parameters', async () => {
      for (const q of ['tree_size=0', 'tree_size=99', 'tree_size=2', 'tree_size=x', 'extra=1']) {
        const { status, body } = await get(tenant, `/v1/events/${events[3]!.id}/proof?${q}`);
        expect(status, q).toBe(400);
        expect(body.error.message).toMatch(/^query\./);
      }
      // Without tree_size, an event after the latest checkpoint waits for the next one: nothing was sent to blame.
      const [late] = await append(tenant, 1, 'late');
      const { status, body } = await get(tenant, `/v1/events/${late!.id}/proof`);
      expect(status).toBe(404);
      expect(body.error).toEqual({ code: 'no_checkpoint', message: `no signed checkpoint covers event seq ${late!.seq} yet (the latest is of size 15); wait for the next one, or pass tree_size` });
      expect((await get(tenant, '/v1/consistency?from=12&to=11')).status).toBe(400);
      expect((await get(tenant, '/v1/consistency')).status).toBe(400);
      // A number is read as written, or refused: never 0x10 as 16, 1e1 as 10, ' 5' as 5, '' as 0.
      for (const q of ['tree_size=0x10', 'tree_size=1e1', 'tree_size=%205', 'tree_size=5.0', 'tree_size=', 'tree_size=-5']) {
        const { status, body } = await get(tenant, `/v1/events/${events[3]!.id}/proof?${q}`);
        expect(status, q).toBe(400);
        expect(body.error.message, q).toMatch(/^query\.tree_size: must be (a whole number in decimal digits|at least 1)/);
      }
      for (const path of ['/v1/events?limit=0x10', '/v1/events?seq_from=0b11', '/v1/checkpoints?before=1e2']) {
        expect((await get(tenant, path)).status, path).toBe(400);
      }
      const missing = await get(tenant, '/v1/consistency?to=5');
      expect(missing.body.error.message).toMatch(/^query\.from: is required/);
    });
  });

  it('a forged or altered checkpoint is rejected', async () => {
    const tenant = await createTenant(t, 'forged');
    const [event] = await append(tenant, 3);
    await runCheckpoints(job);
    const { body } = await get(tenant, `/v1/events/${event!.id}/proof`);
    // Altered text: the size changed after signing.
    const altered = { ...body, checkpoint: body.checkpoint.replace('\n3\n', '\n4\n') };
    expect(() => verifyInclusionDocument(altered, [t.keyring.current])).toThrow(/signature|verif/i);
    // Forged: the right text signed by another key under the same name.
    const forger = generateSigningKey('test-ledger');
    const text = body.checkpoint.split('\n\n')[0];
    const [origin, size, root] = text.split('\n');
    const forged = { ...body, checkpoint: signCheckpoint({ origin, size: Number(size), root: Buffer.from(root, 'base64') }, forger) };
    expect(() => verifyInclusionDocument(forged, [t.keyring.current])).toThrow();
  });

  it('an event altered with superuser rights fails its inclusion proof', async () => {
    const tenant = await createTenant(t, 'altered');
    const events = await append(tenant, 8);
    await runCheckpoints(job);
    await asSuperuser(db, async (su) => {
      // Rewrite event 5's bytes and recompute its hash: the row is self-consistent again.
      const { rows } = await su.query('SELECT canonical FROM events WHERE environment_id = $1 AND seq = 5', [tenant.environmentId]);
      const body = JSON.parse(rows[0].canonical.toString());
      body.event.action = 'nothing.to.see';
      const { canonical, hash } = encodeEvent(body.event, body);
      await su.query('UPDATE events SET canonical = $2, hash = $3, action = $4 WHERE environment_id = $1 AND seq = 5', [
        tenant.environmentId,
        canonical,
        hash,
        'nothing.to.see',
      ]);
    });
    // The tree the events now give is not the chain head's: no proof is served from it.
    const res = await get(tenant, `/v1/events/${events[4]!.id}/proof`);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: { code: 'chain_damaged' } });
    expect(res.body.error.message).toMatch(/do not give its tree at 8/);
  });

  it('proofs read from tiles are those over all leaves; a tampered tile fails them, never serves a wrong one', async () => {
    const tenant = await createTenant(t, 'tiles');
    const events = [...(await append(tenant, 500)), ...(await append(tenant, 100))];
    const all = (await leaves(db.pools.app, tenant.environmentId, 1, 600)).map((l) => l.hash);
    const proofOf = (seq: number, size: number) => get(tenant, `/v1/events/${events[seq - 1]!.id}/proof?tree_size=${size}`);
    for (const [seq, size] of [[5, 300], [300, 513], [600, 600], [257, 257]] as const) {
      const { body } = await proofOf(seq, size);
      expect(body.proof).toEqual(inclusionProof(seq - 1, size, all.slice(0, size)).map((h) => h.toString('base64')));
      expect(body.root).toEqual(merkleRoot(all.slice(0, size)).toString('base64'));
    }
    const consistency = await get(tenant, '/v1/consistency?from=100&to=600');
    expect(consistency.body.proof).toEqual(consistencyProof(100, 600, all).map((h) => h.toString('base64')));

    // Tile 0/0 rewritten with leaf 3's hash changed: what only a superuser can do.
    await asSuperuser(db, async (su) => {
      await su.query('ALTER TABLE tiles DISABLE TRIGGER USER');
      await su.query(`UPDATE tiles SET hashes = overlay(hashes PLACING '\\x${'ab'.repeat(32)}'::bytea FROM 65 FOR 32) WHERE environment_id = $1 AND level = 0 AND tile_index = 0`, [tenant.environmentId]);
      await su.query('ALTER TABLE tiles ENABLE TRIGGER USER');
    });
    for (const res of [await proofOf(5, 300), await proofOf(4, 600), await get(tenant, '/v1/consistency?from=100&to=600')]) {
      expect(res.status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'chain_damaged', message: expect.stringMatching(/stored tiles of this chain do not give its tree/) });
    }
  });

  it('a tampered tile root (what partial tiles above are made of) fails the proofs that read it', async () => {
    const tenant = await createTenant(t, 'tile-root');
    // 600 leaves: [0, 512) is one node of the head's compact range, but leaf 300's path needs its
    // half [0, 256), a hash of the partial level-1 tile, derived from tile 0/0's root.
    const events = await append(tenant, 600);
    expect((await get(tenant, `/v1/events/${events[299]!.id}/proof?tree_size=600`)).status).toBe(200);
    await asSuperuser(db, async (su) => {
      await su.query('ALTER TABLE tiles DISABLE TRIGGER USER');
      await su.query(`UPDATE tiles SET root = set_byte(root, 0, get_byte(root, 0) # 255) WHERE environment_id = $1 AND level = 0 AND tile_index = 0`, [tenant.environmentId]);
      await su.query('ALTER TABLE tiles ENABLE TRIGGER USER');
    });
    const res = await get(tenant, `/v1/events/${events[299]!.id}/proof?tree_size=600`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('chain_damaged');
  });

  it('a whole tail rewritten with recomputed hashes is caught by the earlier signed checkpoint', async () => {
    const tenant = await createTenant(t, 'rewritten');
    await append(tenant, 10);
    await runCheckpoints(job); // signed at 10
    // Rewrite events 6..10 with recomputed hashes, links and chain head: every row checks out.
    await asSuperuser(db, async (su) => {
      const { rows } = await su.query('SELECT seq, canonical, hash FROM events WHERE environment_id = $1 ORDER BY seq', [tenant.environmentId]);
      let range = emptyRange();
      let prev = GENESIS_PREV;
      for (const row of rows) {
        let hash: Buffer = row.hash;
        if (row.seq >= 6) {
          const body = JSON.parse(row.canonical.toString());
          body.event.action = `rewritten.${row.seq}`;
          const encoded = encodeEvent(body.event, { ...body, prev });
          hash = encoded.hash;
          await su.query('UPDATE events SET canonical = $3, hash = $4, prev = $5, action = $6 WHERE environment_id = $1 AND seq = $2', [
            tenant.environmentId,
            row.seq,
            encoded.canonical,
            hash,
            Buffer.from(prev, 'hex'),
            body.event.action,
          ]);
        }
        range = appendLeaves(range, [hash]);
        prev = hash.toString('hex');
      }
      await su.query('UPDATE chain_heads SET hash = $2, compact_range = $3 WHERE environment_id = $1', [
        tenant.environmentId,
        Buffer.from(prev, 'hex'),
        range.hashes,
      ]);
    });
    // Rows, links and head all agree, so only the signed checkpoint can tell.
    const verified = await get(tenant, '/v1/events?verify=true');
    expect(verified.body.verification.ok).toBe(true);

    await append(tenant, 2, 'after');
    logged.length = 0;
    await runCheckpoints(job);
    expect(logged.join('')).toMatch(/"reason":"the Merkle root of the stored events does not match the chain head","msg":"checkpoint refused"/);
    const latest = await get(tenant, '/v1/checkpoints/latest');
    expect(latest.body.tree_size).toBe(10); // nothing inconsistent was signed

    const consistency = await get(tenant, '/v1/consistency?from=10&to=12');
    const withSignedFrom = { ...consistency.body, checkpoints: { from: latest.body.note, to: signCheckpoint(
      { origin: chainOrigin(t.keyring.origin, tenant.projectId, tenant.environmentId), size: 12, root: Buffer.from(consistency.body.roots.to, 'base64') },
      t.keyring.current,
    ) } };
    expect(() => verifyConsistencyDocument(withSignedFrom, [t.keyring.current])).toThrow(/root/);
  });

  it('keygen writes a 0600 key file and prints its vkey; it never overwrites', async () => {
    const out = path.join(dir, 'ops.key');
    const cli = runCli(['keygen', '--name', 'ops-ledger', '--out', out], {});
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toMatch(/^ops-ledger\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/m);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(await readFile(out, 'utf8')).toMatch(/^PRIVATE\+KEY\+ops-ledger\+/);
    const again = runCli(['keygen', '--name', 'ops-ledger', '--out', out], {});
    expect((await again.exited).code).toBe(2);
  });
});
