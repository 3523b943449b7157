import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, cp, mkdtemp, readFile, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_OBJECT_BYTES, type Archive } from '../../src/archive/archive.js';
import { LocalArchive } from '../../src/archive/local.js';
import { createS3Client, S3Archive } from '../../src/archive/s3.js';
import { verifyArchive, type VerifyArchiveOptions } from '../../src/archive/verify.js';
import { bundleKey, checkpointKey, tileKey } from '../../src/archive/layout.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { dueThrough, runSeal } from '../../src/jobs/seal.js';
import { openCheckpoint, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { eventHash } from '../../src/ledger/event.js';
import { canonicalBytes } from '../../src/ledger/jcs.js';
import { generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { uuidv7 } from '../../src/ledger/uuid.js';
import { ensurePartitions } from '../../src/store/partitions.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });
type Tenant = Awaited<ReturnType<typeof createTenant>>;

interface Sealed {
  db: TestDatabase;
  t: TestApp;
  a: Tenant;
  b: Tenant;
  /** The three sealed days, oldest first: A has a bundle on each, B on the first and the last. */
  days: [string, string, string];
}

/**
 * Seals two chains into `archive`: A gets events 1-30, 31-55 and 56-75 on three days, B 1-20 and
 * 21-35 on the first and third, and A 76-80 today (unsealed). Checkpoints are archived at A 10
 * (inside a bundle), A 30, 55, 75, 80 (beyond the last bundle) and B 20, 35.
 */
async function sealedArchive(archive: Archive): Promise<Sealed> {
  const db = await createTestDatabase();
  let clock = Date.now() - 11 * DAY;
  const t = await createTestApp(db, {}, () => clock, archive);
  const a = await createTenant(t, 'chain-a');
  const b = await createTenant(t, 'chain-b');
  const post = async (tenant: Tenant, n: number, tag: string) => {
    const events = Array.from({ length: n }, (_, i) => ({ action: `${tag}.${i}` }));
    expect((await t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).status).toBe(201);
  };
  const checkpoint = () => runCheckpoints({ db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log });
  const nextDay = async (time: number) => {
    clock = time;
    await ensurePartitions(db.pools.owner, new Date(clock), 1);
  };
  const days = [0, 1, 2].map((i) => new Date(clock + i * DAY).toISOString().slice(0, 10)) as Sealed['days'];

  await post(a, 10, 'a0');
  await checkpoint();
  await post(a, 20, 'a0');
  await post(b, 20, 'b0');
  await checkpoint();
  await nextDay(clock + DAY);
  await post(a, 25, 'a1');
  await checkpoint();
  await nextDay(clock + DAY);
  await post(a, 20, 'a2');
  await post(b, 15, 'b2');
  await checkpoint();
  await nextDay(Date.now());
  await post(a, 5, 'today');
  await checkpoint();
  const report = await runSeal({ db: db.pools.owner, archive, keyring: t.keyring, log }, dueThrough(Date.now(), 7));
  expect(report).toMatchObject({ bundles: 5, events: 110, waiting: [] });
  return { db, t, a, b, days };
}

const chainOf = (tenant: Tenant) => `${tenant.projectId}/${tenant.environmentId}`;
/** A failure of `kind` at chain, bundle day and seq, for a reason (a string or a matcher). */
const failureAt = (kind: string, tenant: Tenant, day: string, seq: number | null, reason: unknown) =>
  expect.objectContaining({ kind, chain: chainOf(tenant), day, seq, reason });

const CLEAN = { bundles: { valid: 5, total: 5 }, events: { valid: 110, total: 110 }, checkpoints: { valid: 7, total: 7 } };

describe('verify-archive on a local folder', () => {
  let s: Sealed;
  let sealed: string;
  let vkey: string;
  const folders: string[] = [];

  beforeAll(async () => {
    sealed = await mkdtemp(path.join(os.tmpdir(), 'auditledger-sealed-'));
    folders.push(sealed);
    s = await sealedArchive(new LocalArchive(sealed));
    vkey = verifierKey(s.t.keyring.current);
  });
  afterAll(async () => {
    await s?.t.close();
    await s?.db.drop();
    await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
  });

  /** A fresh copy of the sealed archive, to tamper with. */
  async function copy(): Promise<string> {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'auditledger-tampered-'));
    folders.push(folder);
    await cp(sealed, folder, { recursive: true });
    return folder;
  }
  const verify = (folder: string, options: Partial<VerifyArchiveOptions> = {}) =>
    verifyArchive(new LocalArchive(folder), { verifiers: [s.t.keyring.current], ...options });
  const bundleFile = (folder: string, tenant: Tenant, day: string) => path.join(folder, bundleKey(tenant.projectId, tenant.environmentId, day));
  /** Rewrites an archived file (read-only, 0444) through `edit` of its lines. */
  async function editLines(file: string, edit: (lines: string[]) => string[]): Promise<void> {
    const lines = (await readFile(file, 'utf8')).split('\n').slice(0, -1);
    await chmod(file, 0o644);
    await writeFile(file, `${edit(lines).join('\n')}\n`);
  }
  /** The index in a bundle's lines (the manifest is line 0) of event `seq` of A's second bundle (31-55). */
  const lineOf = (seq: number) => seq - 30;

  it('a clean archive verifies: every bundle, event and checkpoint, in range order', async () => {
    const report = await verify(sealed);
    expect(report).toMatchObject({ ok: true, failures: [], found: { from: s.days[0], to: s.days[2] }, ...CLEAN });
  });

  it('the CLI reports a clean archive like validate-logs and exits 0', async () => {
    const cli = runCli(['verify-archive', sealed, '--key', vkey], {});
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toBe(
      `Validating bundles in ${sealed} from the first day to the last day (found ${s.days[0]} to ${s.days[2]})\n\n` +
        '5/5 bundles valid\n110/110 events valid\n7/7 checkpoints valid\n',
    );
  });

  it('gives the same report on one thread as on one per core', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => [...lines.slice(0, lineOf(40)), ...lines.slice(lineOf(41))]);
    const onOne = await verify(folder, { threads: 1 });
    expect(onOne.ok).toBe(false);
    expect(await verify(folder, { threads: 4 })).toEqual(onOne);
    const cli = runCli(['verify-archive', sealed, '--key', vkey, '--threads', '1'], {});
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toContain('5/5 bundles valid\n110/110 events valid\n7/7 checkpoints valid\n');
  });

  it('a byte flipped in an event is reported at its chain, bundle and seq', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => {
      lines[lineOf(40)] = lines[lineOf(40)]!.replace('"action":"a1.9"', '"action":"a1.8"');
      return lines;
    });
    const report = await verify(folder);
    expect(report).toMatchObject({ ok: false, bundles: { valid: 4, total: 5 }, events: { valid: 85, total: 110 }, checkpoints: CLEAN.checkpoints });
    expect(report.failures).toContainEqual(
      failureAt('bundle', s.a, s.days[1], 40, 'the bytes do not hash to the prev of event 41'),
    );
    expect(new Set(report.failures.map((f) => `${f.chain} ${f.day}`))).toEqual(new Set([`${chainOf(s.a)} ${s.days[1]}`]));

    const cli = runCli(['verify-archive', folder, '--key', vkey], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('4/5 bundles valid, 1/5 INVALID\n85/110 events valid, 25/110 INVALID\n7/7 checkpoints valid\n');
    expect(cli.output()).toContain(
      `Bundle INVALID chain ${chainOf(s.a)}, bundle ${s.days[1]}, seq 40: the bytes do not hash to the prev of event 41 (${bundleKey(s.a.projectId, s.a.environmentId, s.days[1])})\n`,
    );
  });

  it('a removed bundle is a gap: the events it held are reported missing before the next bundle', async () => {
    const folder = await copy();
    await rm(bundleFile(folder, s.a, s.days[1]));
    const report = await verify(folder);
    expect(report.failures).toEqual([
      failureAt('missing', s.a, s.days[2], 31, `events 31..55 are in no bundle: a bundle before ${s.days[2]} is missing`),
    ]);
    expect(report).toMatchObject({ ok: false, bundles: { valid: 4, total: 4 }, events: { valid: 85, total: 85 } });
  });

  it("a chain's first bundle removed: events from seq 1 are missing", async () => {
    const folder = await copy();
    await rm(bundleFile(folder, s.b, s.days[0]));
    const report = await verify(folder);
    expect(report.failures).toEqual([expect.objectContaining({ kind: 'missing', chain: chainOf(s.b), day: s.days[2], seq: 1 })]);
  });

  it('a bundle whose manifest is unreadable is reported once: its events are not reported again as missing', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => ['{"not": "a manifest"}', ...lines.slice(1)]);
    const report = await verify(folder);
    expect(report.failures).toEqual([
      failureAt('bundle', s.a, s.days[1], null, expect.stringMatching(/^manifest has unknown field/)),
    ]);
    expect(report).toMatchObject({ bundles: { valid: 4, total: 5 }, events: { valid: 85, total: 85 } });
  });

  it('a bundle cut short names the event whose line is cut, in text and JSON', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => lines.slice(0, lineOf(40) + 1));
    const file = bundleFile(folder, s.a, s.days[1]);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 20)); // event 40's line, without its end
    const report = await verify(folder);
    expect(report.failures).toEqual([failureAt('bundle', s.a, s.days[1], 40, expect.stringMatching(/^line 11, where event 40 belongs, is cut short/))]);
    const cli = runCli(['verify-archive', folder, '--key', vkey], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain(`Bundle INVALID chain ${chainOf(s.a)}, bundle ${s.days[1]}, seq 40: line 11, where event 40 belongs, is cut short`);
  });

  it('a bundle with an empty event line is unread, on a checking thread or this one: its events are not counted, the chain after it is checked', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => lines.map((line, i) => (i === lineOf(40) ? '' : line)));
    for (const threads of [1, 2]) {
      const report = await verify(folder, { threads });
      expect(report.failures, `threads ${threads}`).toEqual([failureAt('bundle', s.a, s.days[1], 40, 'line 11, where event 40 belongs, is empty')]);
      expect(report, `threads ${threads}`).toMatchObject({ bundles: { valid: 4, total: 5 }, events: { valid: 85, total: 85, uncountedBundles: 1 } });
    }
  });

  it('bundles that cannot be read, more than the threads take at once, are each reported and the rest still checked', async () => {
    const folder = await copy();
    const unreadable = [bundleFile(folder, s.a, s.days[0]), bundleFile(folder, s.a, s.days[1]), bundleFile(folder, s.b, s.days[0])];
    for (const file of unreadable) {
      await rm(file);
      await writeFile(file, 'not a bundle\n');
    }
    // Two threads take three bundles at once, and each chain's third bundle comes after those three:
    // each unreadable one must give its place back.
    const report = await verify(folder, { threads: 2 });
    expect(report.failures.filter((f) => f.kind === 'bundle').map((f) => f.key && path.join(folder, f.key)).sort()).toEqual(unreadable.sort());
    expect(report).toMatchObject({ bundles: { valid: 2, total: 5 }, events: { valid: 35, total: 35, uncountedBundles: 3 } });
    // Their events are in no tally, and the text says so rather than "35/35 events valid" alone.
    const cli = runCli(['verify-archive', folder, '--key', vkey], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('2/5 bundles valid, 3/5 INVALID\n35/35 events valid (not counting the events of 3 bundle(s) that could not be read or parsed)\n');
  }, 15_000);

  it('a FIFO where a bundle is is reported as unreadable at once, and the rest is still checked', async () => {
    const folder = await copy();
    const file = bundleFile(folder, s.a, s.days[1]);
    await rm(file);
    execFileSync('mkfifo', [file]);
    for (const threads of [1, undefined]) {
      const report = await verify(folder, { threads });
      expect(report.failures).toContainEqual(failureAt('bundle', s.a, s.days[1], null, 'the object is not a regular file (a FIFO, a socket or a device)'));
      expect(report).toMatchObject({ bundles: { valid: 4, total: 5 } });
    }
  });

  it('a bundle key that is a folder is reported as unreadable, and the rest is still checked; verify-proof --id searches past it', async () => {
    const folder = await copy();
    const file = bundleFile(folder, s.a, s.days[1]);
    // The day's bundle becomes its second part, and a link to a folder takes the first part's key.
    await rename(file, file.replace(/\.ndjson$/, '.2.ndjson'));
    await symlink(os.tmpdir(), file);
    const report = await verify(folder);
    expect(report.failures).toContainEqual(failureAt('bundle', s.a, s.days[1], null, 'the object is a folder, not a regular file'));
    expect(report).toMatchObject({ bundles: { valid: 5, total: 6 } });

    const lines = (await readFile(bundleFile(sealed, s.a, s.days[1]), 'utf8')).split('\n');
    const id = (JSON.parse(lines[lineOf(42)]!) as { id: string }).id;
    const prove = async (eventId: string) => {
      const cli = runCli(['verify-proof', '--archive', folder, '--chain', chainOf(s.a), '--id', eventId, '--key', vkey], {});
      return { code: (await cli.exited).code, output: cli.output() };
    };
    expect(await prove(id)).toMatchObject({ code: 0, output: expect.stringContaining(`ok: event ${id} (seq 42)`) });
    // A note or tile a proof by seq needs, unreadable the same way, is named with its key.
    const note = checkpointKey(s.a.projectId, s.a.environmentId, 80);
    await rm(path.join(folder, note));
    await symlink(os.tmpdir(), path.join(folder, note));
    const bySeq = runCli(['verify-proof', '--archive', folder, '--chain', chainOf(s.a), '--seq', '42', '--key', vkey], {});
    expect((await bySeq.exited).code).toBe(1);
    expect(bySeq.output()).toBe(`FAILED: ${note} in ${folder} cannot be read: the object is a folder, not a regular file\n`);
    const unknown = uuidv7(Date.parse(`${s.days[1]}T12:00:00Z`));
    const missed = await prove(unknown);
    expect(missed.code).toBe(1);
    expect(missed.output).toContain(`FAILED: event ${unknown} is in no readable bundle of chain ${chainOf(s.a)} in ${folder}; bundle ${path.relative(folder, file)} cannot be read: the object is a folder, not a regular file`);
  });

  it('a bundle too large to hold in memory is reported as unreadable, and the rest is still checked', async () => {
    const folder = await copy();
    const file = bundleFile(folder, s.a, s.days[1]);
    await rm(file);
    await writeFile(file, '');
    await truncate(file, MAX_OBJECT_BYTES + 1); // sparse: no disk, and the verifier reads only its size
    const report = await verify(folder);
    expect(report.failures).toEqual([
      failureAt('bundle', s.a, s.days[1], null, `the object is ${MAX_OBJECT_BYTES + 1} bytes: this verifier reads an object whole, and can hold at most ${MAX_OBJECT_BYTES}`),
    ]);
    expect(report).toMatchObject({ bundles: { valid: 4, total: 5 }, events: { valid: 85, total: 85 } });
  });

  it('an object under bundles/ that the ledger does not write is reported', async () => {
    const folder = await copy();
    await writeFile(path.join(folder, 'bundles', 'notes.txt'), 'hello\n');
    // A bundle key of a day that does not exist is not one the ledger writes either.
    const noDay = bundleKey(s.a.projectId, s.a.environmentId, '2026-13-01');
    await cp(bundleFile(folder, s.a, s.days[0]), path.join(folder, noDay));
    const report = await verify(folder);
    expect(report.failures).toEqual([
      expect.objectContaining({ kind: 'archive', key: noDay }),
      expect.objectContaining({ kind: 'archive', key: 'bundles/notes.txt' }),
    ]);
    expect(report.found).toEqual({ from: s.days[0], to: s.days[2] });
  });

  it('two bundles of a chain swapped: each object holds the other day, and the chain itself still links', async () => {
    const folder = await copy();
    const [first, second] = [bundleFile(folder, s.a, s.days[0]), bundleFile(folder, s.a, s.days[1])];
    await rename(first, `${first}.swap`);
    await rename(second, first);
    await rename(`${first}.swap`, second);
    const report = await verify(folder);
    expect(report.failures).toEqual([
      failureAt('bundle', s.a, s.days[0], null, `the object holds the bundle of ${s.days[1]}, not of ${s.days[0]}`),
      failureAt('bundle', s.a, s.days[1], null, `the object holds the bundle of ${s.days[0]}, not of ${s.days[1]}`),
    ]);
  });

  it('an event line deleted is reported missing at its seq', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => lines.filter((_, i) => i !== lineOf(45)));
    const report = await verify(folder);
    expect(report.failures).toContainEqual(failureAt('bundle', s.a, s.days[1], 45, 'event 45 is missing'));
    expect(report.failures.every((f) => f.day === s.days[1] && f.kind === 'bundle')).toBe(true);
  });

  it('a forged event inserted, linked to the one before, is reported at the seq it claims', async () => {
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (lines) => {
      const before = lines[lineOf(40)]!;
      const forged = { ...JSON.parse(before), seq: 41, prev: eventHash(Buffer.from(before)).toString('hex'), event: { action: 'admin.granted' } };
      lines.splice(lineOf(41), 0, canonicalBytes(forged).toString());
      return lines;
    });
    const report = await verify(folder);
    expect(report.failures).toContainEqual(failureAt('bundle', s.a, s.days[1], 41, '2 lines hold this seq'));
    expect(report.bundles).toEqual({ valid: 4, total: 5 });
  });

  it('a checkpoint note replaced by one signed with another key is reported at its size, in the bundle holding it', async () => {
    const folder = await copy();
    const file = path.join(folder, checkpointKey(s.a.projectId, s.a.environmentId, 55));
    const { checkpoint } = openCheckpoint(await readFile(file, 'utf8'), [s.t.keyring.current]);
    await chmod(file, 0o644);
    await writeFile(file, signCheckpoint(checkpoint, generateSigningKey('test-ledger')));
    const report = await verify(folder);
    expect(report.failures).toEqual([
      failureAt('checkpoint', s.a, s.days[1], 55, expect.stringMatching(/no signature by a known key/)),
    ]);
    expect(report.checkpoints).toEqual({ valid: 6, total: 7, missing: 0 });
  });

  it('a checkpoint note a bundle signs, deleted from the archive, is reported missing by name, exit 1', async () => {
    const folder = await copy();
    const key = checkpointKey(s.a.projectId, s.a.environmentId, 55);
    await rm(path.join(folder, key));
    const report = await verify(folder);
    expect(report.failures).toEqual([
      { kind: 'missing-checkpoint', chain: chainOf(s.a), day: s.days[1], seq: 55, key, reason: "the checkpoint note at tree size 55, which the bundle's manifest signs, is not in the archive" },
    ]);
    expect(report).toMatchObject({ ok: false, bundles: CLEAN.bundles, events: CLEAN.events, checkpoints: { valid: 6, total: 7, missing: 1 } });

    const cli = runCli(['verify-archive', folder, '--key', vkey], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('5/5 bundles valid\n110/110 events valid\n6/7 checkpoints valid, 1/7 MISSING\n');
    expect(cli.output()).toContain(`Checkpoint MISSING chain ${chainOf(s.a)}, bundle ${s.days[1]}, seq 55: the checkpoint note at tree size 55`);
  });

  it('verify-proof --archive proves an event by its id, found in the bundles of its day, and names a malformed or unknown id', async () => {
    const lines = (await readFile(bundleFile(sealed, s.a, s.days[1]), 'utf8')).split('\n');
    const id = (JSON.parse(lines[lineOf(42)]!) as { id: string }).id;
    const prove = async (folder: string, ...args: string[]) => {
      const cli = runCli(['verify-proof', '--archive', folder, '--chain', chainOf(s.a), ...args, '--key', vkey], {});
      return { code: (await cli.exited).code, output: cli.output() };
    };
    // The event's bytes come from its bundle and are checked against the leaf.
    const ok = await prove(sealed, '--id', id);
    expect(ok.output).toMatch(new RegExp(`^ok: event ${id} \\(seq 42\\) is included in the signed checkpoint of .* at size 80\n$`));
    expect(ok.code).toBe(0);
    expect((await prove(sealed, '--id', id.toUpperCase())).code).toBe(0);

    for (const malformed of ['not-a-uuid', '6ba7b810-9dad-11d1-80b4-00c04fd430c8' /* v1 */]) {
      const refused = await prove(sealed, '--id', malformed);
      expect(refused.code).toBe(2);
      expect(refused.output).toContain(`--id takes an event id, a UUIDv7 (RFC 9562) such as 01890a5d-ac96-774b-bcce-b302099a8057; got "${malformed}"`);
    }
    expect((await prove(sealed, '--id', id, '--seq', '42')).output).toContain('--archive takes one of --seq N or --id UUID, not both');
    const unknown = uuidv7(Date.parse(`${s.days[1]}T12:00:00Z`));
    expect(await prove(sealed, '--id', unknown)).toEqual({
      code: 1,
      output: `FAILED: event ${unknown} is in no bundle of chain ${chainOf(s.a)} in ${sealed}: ${s.days[1]}, the day its id was made, has its 1 bundle(s) there (an event not sealed yet is in none: prove it by its seq)\n`,
    });
    const unsealed = await prove(sealed, '--id', uuidv7());
    expect(unsealed.code).toBe(1);
    expect(unsealed.output).toContain(`the day its id was made, has no bundle there`);

    // A line changed in its bundle no longer hashes to the leaf the tiles and the signed root hold.
    const folder = await copy();
    await editLines(bundleFile(folder, s.a, s.days[1]), (edited) => {
      edited[lineOf(42)] = edited[lineOf(42)]!.replace('"action":"a1.11"', '"action":"a1.10"');
      return edited;
    });
    expect(await prove(folder, '--id', id)).toEqual({ code: 1, output: 'FAILED: the event bytes do not hash to leaf_hash\n' });
  });

  it('an archived tile changed is reported at the first seq it covers; the CLI names it, exit 1', async () => {
    const folder = await copy();
    // A's checkpoint at 30 archived the partial level-0 tile of width 30.
    const key = tileKey(s.a.projectId, s.a.environmentId, { level: 0, index: 0, width: 30 });
    const file = path.join(folder, key);
    const bytes = await readFile(file);
    bytes[33]! ^= 1;
    await chmod(file, 0o644);
    await writeFile(file, bytes);
    const report = await verify(folder);
    expect(report.failures).toEqual([{ kind: 'tile', chain: chainOf(s.a), day: s.days[2], seq: 1, key, reason: "the tile's hashes are not those of the bundles' events" }]);
    const cli = runCli(['verify-archive', folder, '--key', vkey], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain(`Tile INVALID chain ${chainOf(s.a)}, bundle ${s.days[2]}, seq 1: the tile's hashes are not those of the bundles' events (${key})`);
  });

  it('the wrong --key: nothing verifies, exit 1', async () => {
    const cli = runCli(['verify-archive', sealed, '--key', verifierKey(generateSigningKey('test-ledger'))], {});
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('0/5 bundles valid, 5/5 INVALID\n0/110 events valid, 110/110 INVALID\n0/7 checkpoints valid, 7/7 INVALID\n');
    expect(cli.output()).toMatch(/Bundle INVALID chain .*: manifest signature: no verifier key has key id/);
  });

  it('--from/--to check only those days, continuing from the bundle before; --chain only that chain', async () => {
    const middle = await verify(sealed, { from: s.days[1], to: s.days[1] });
    // A's bundle of the day and its checkpoint at 55; B has no bundle that day.
    expect(middle).toMatchObject({
      ok: true,
      found: { from: s.days[1], to: s.days[1] },
      bundles: { total: 1 },
      events: { total: 25 },
      checkpoints: { total: 1 },
    });
    const last = await verify(sealed, { from: s.days[2] });
    // Checkpoints past the last bundle are checked too: A 75 and 80, B 35.
    expect(last).toMatchObject({ ok: true, bundles: { total: 2 }, events: { total: 35 }, checkpoints: { total: 3 } });
    const chainB = await verify(sealed, { chain: chainOf(s.b) });
    expect(chainB).toMatchObject({ ok: true, bundles: { total: 2 }, events: { total: 35 }, checkpoints: { total: 2 } });
  });

  it('a range whose bundle before was removed starts with a gap', async () => {
    const folder = await copy();
    await rm(bundleFile(folder, s.a, s.days[1]));
    const report = await verify(folder, { from: s.days[2], chain: chainOf(s.a) });
    expect(report.failures).toEqual([expect.objectContaining({ kind: 'missing', day: s.days[2], seq: 31 })]);
  });

  it('before the first day is sealed, the checkpoints verify (signatures, roots against the tiles) and the archive is valid', async () => {
    // The archive as the checkpoint job leaves it before any seal: notes and tiles, no bundle.
    const fresh = await copy();
    await rm(path.join(fresh, 'bundles'), { recursive: true });
    const report = await verify(fresh);
    expect(report).toMatchObject({ ok: true, sealed: false, found: null, failures: [], bundles: { total: 0 }, checkpoints: { valid: 7, total: 7, missing: 0 } });
    const cli = runCli(['verify-archive', fresh, '--key', vkey], {});
    expect((await cli.exited).code, cli.output()).toBe(0);
    expect(cli.output()).toContain('0/0 bundles valid\n0/0 events valid\n7/7 checkpoints valid\n\nNo day is sealed yet (0 bundles)');

    // A tile the latest note of A (size 80) reads, altered: the note's root is not the tiles'.
    const edge = path.join(fresh, tileKey(s.a.projectId, s.a.environmentId, { level: 0, index: 0, width: 80 }));
    const bytes = await readFile(edge);
    bytes[0]! ^= 1;
    await chmod(edge, 0o644);
    await writeFile(edge, bytes);
    // A tile B's note at size 20 reads, gone.
    const gone = tileKey(s.b.projectId, s.b.environmentId, { level: 0, index: 0, width: 20 });
    await rm(path.join(fresh, gone));
    const tampered = await verify(fresh);
    expect(tampered).toMatchObject({ ok: false, sealed: false, checkpoints: { valid: 6, total: 7 } });
    expect(tampered.failures).toEqual([
      { kind: 'checkpoint', chain: chainOf(s.a), day: null, seq: 80, key: checkpointKey(s.a.projectId, s.a.environmentId, 80), reason: expect.stringMatching(/^its root is not that of the archived tiles at size 80 \(expected [0-9a-f]{64}, calculated [0-9a-f]{64}\)$/) },
      { kind: 'tile', chain: chainOf(s.b), day: null, seq: 1, key: gone, reason: 'not in the archive, though the checkpoint note at tree size 20 needs it' },
    ]);
  });

  it('--json prints one document; no bundles, a missing folder and bad usage are reported, not valid', async () => {
    const json = runCli(['verify-archive', sealed, '--key', vkey, '--json', '--chain', chainOf(s.b)], {});
    expect((await json.exited).code).toBe(0);
    const document = JSON.parse(json.output());
    expect(document).toMatchObject({ ok: true, location: sealed, requested: { chain: chainOf(s.b) }, bundles: { valid: 2, total: 2 } });

    const empty = await mkdtemp(path.join(os.tmpdir(), 'auditledger-empty-'));
    folders.push(empty);
    const none = runCli(['verify-archive', empty, '--key', vkey], {});
    expect((await none.exited).code).toBe(1);
    expect(none.output()).toContain(
      `(found none)\n\n0/0 bundles valid\n0/0 events valid\n0/0 checkpoints valid\n\nArchive INVALID: ${empty} holds no auditledger archive (no checkpoint or bundle)\n`,
    );
    const otherChain = `${uuidv7()}/${uuidv7()}`;
    const notThere = runCli(['verify-archive', sealed, '--key', vkey, '--chain', otherChain], {});
    expect((await notThere.exited).code).toBe(1);
    expect(notThere.output()).toContain(`Archive INVALID chain ${otherChain}: ${sealed} holds no checkpoint or bundle of chain ${otherChain}\n`);

    const missing = runCli(['verify-archive', path.join(empty, 'nowhere'), '--key', vkey], {});
    expect((await missing.exited).code).toBe(1);
    expect(missing.output()).toContain('cannot read the archive: ');

    const usageErrors = [['--from', '2026-02-30'], ['--to', '2026-13-01'], ['--retention-days', '3'], ['--chain', 'no-slash'], ['--threads', '0']];
    const usage = [[sealed], [sealed, '--key', 'nonsense'], ...usageErrors.map((option) => [sealed, '--key', vkey, ...option])].map((args) =>
      runCli(['verify-archive', ...args], {}),
    );
    expect((await Promise.all(usage.map((cli) => cli.exited))).map(({ code }) => code)).toEqual(usage.map(() => 2));
  });
});

const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) {
  if (process.env.CI) throw new Error('CI must provide S3_ENDPOINT (../shared/scripts/s3-local/start.sh)');
  console.warn('skipping verify-archive on S3: S3_ENDPOINT is not set (start ../shared/scripts/s3-local/start.sh to run it)');
}

describe.skipIf(!endpoint)('verify-archive on S3 Object Lock', () => {
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const forcePathStyle = process.env.S3_FORCE_PATH_STYLE !== 'false';
  const client = createS3Client({ endpoint, region, forcePathStyle });
  const bucket = `auditledger-verify-${randomBytes(5).toString('hex')}`;
  const s3Env = () => ({
    S3_ENDPOINT: endpoint!,
    AWS_REGION: region,
    S3_FORCE_PATH_STYLE: String(forcePathStyle),
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? '',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? '',
  });
  let s: Sealed;
  let archive: S3Archive;

  beforeAll(async () => {
    await S3Archive.createBucket(client, bucket);
    archive = new S3Archive({ bucket, prefix: 'ledger', client, mode: 'COMPLIANCE', retentionDays: 1 });
    s = await sealedArchive(archive);
  });
  afterAll(async () => {
    await s?.t.close();
    await s?.db.drop();
  });

  it('a sealed bucket verifies, Object Lock included, through the function and the CLI', async () => {
    const report = await verifyArchive(archive, { verifiers: [s.t.keyring.current], retentionDays: 1 });
    expect(report).toMatchObject({ ok: true, failures: [], ...CLEAN });
    const cli = runCli(['verify-archive', `s3://${bucket}/ledger`, '--key', verifierKey(s.t.keyring.current)], s3Env());
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toContain(
      `Validating bundles in s3://${bucket}/ledger from the first day to the last day (found ${s.days[0]} to ${s.days[2]})`,
    );
  });

  it('tiles are written once under Object Lock, and verify-proof --archive proves an event from the bucket', async () => {
    const key = tileKey(s.a.projectId, s.a.environmentId, { level: 0, index: 0, width: 80 });
    expect(await archive.retention(key)).toMatchObject({ mode: 'COMPLIANCE' });
    const cli = runCli(
      ['verify-proof', '--archive', `s3://${bucket}/ledger`, '--chain', chainOf(s.a), '--seq', '42', '--key', verifierKey(s.t.keyring.current)],
      s3Env(),
    );
    expect((await cli.exited).code, cli.output()).toBe(0);
    expect(cli.output()).toMatch(/^ok: leaf index 41 \(seq 42; its hash only: no event bytes were given to check\) is included in the signed checkpoint of .* at size 80/);
  });

  it('objects retained for less than --retention-days after they were written fail the lock check', async () => {
    // Written today, locked one day: well short of 30 days after days ten and eleven days ago.
    const report = await verifyArchive(archive, { verifiers: [s.t.keyring.current], retentionDays: 30 });
    expect(report).toMatchObject({ ok: false, bundles: { valid: 0, total: 5 }, checkpoints: { valid: 0, total: 7 }, events: CLEAN.events });
    expect(report.failures.every((f) => f.kind === 'retention' && /retained \(COMPLIANCE\) only until/.test(f.reason))).toBe(true);
    const cli = runCli(['verify-archive', `s3://${bucket}/ledger`, '--key', verifierKey(s.t.keyring.current), '--retention-days', '30'], s3Env());
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('Object Lock INVALID chain ');
  });

  it('a bundle overwritten by a new, unlocked version of the same bytes is reported', async () => {
    const key = bundleKey(s.a.projectId, s.a.environmentId, s.days[1]);
    const bytes = (await archive.get(key))!;
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `ledger/${key}`, Body: bytes, ContentMD5: createHash('md5').update(bytes).digest('base64') }),
    );
    const report = await verifyArchive(archive, { verifiers: [s.t.keyring.current], retentionDays: 1 });
    expect(report.failures).toEqual([failureAt('retention', s.a, s.days[1], null, 'not under Object Lock retention')]);
    expect(report.failures[0]!.key).toBe(key);
  });

  it('an archived tile overwritten by a new, unlocked version of the same bytes is reported', async () => {
    const key = tileKey(s.b.projectId, s.b.environmentId, { level: 0, index: 0, width: 20 });
    const bytes = (await archive.get(key))!;
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `ledger/${key}`, Body: bytes, ContentMD5: createHash('md5').update(bytes).digest('base64') }),
    );
    const report = await verifyArchive(archive, { verifiers: [s.t.keyring.current], chain: chainOf(s.b), retentionDays: 1 });
    expect(report.failures).toEqual([{ kind: 'retention', chain: chainOf(s.b), day: null, seq: 1, key, reason: 'not under Object Lock retention' }]);
  });

  it('a checkpoint note hidden behind a delete marker (allowed under Object Lock) is reported missing', async () => {
    const key = checkpointKey(s.b.projectId, s.b.environmentId, 20);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `ledger/${key}` }));
    const report = await verifyArchive(archive, { verifiers: [s.t.keyring.current], chain: chainOf(s.b) });
    expect(report.failures).toEqual([
      { kind: 'missing-checkpoint', chain: chainOf(s.b), day: s.days[0], seq: 20, key, reason: expect.stringMatching(/is not in the archive$/) },
    ]);
    expect(report.checkpoints).toEqual({ valid: 1, total: 2, missing: 1 });
  });

  it('a bucket that does not exist is reported, exit 1', async () => {
    const cli = runCli(['verify-archive', `s3://${bucket}-missing`, '--key', verifierKey(s.t.keyring.current)], s3Env());
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toMatch(/cannot read the archive: S3 ListObjectsV2 .* failed: NoSuchBucket/);
  });
});
