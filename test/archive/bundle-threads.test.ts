import { afterAll, describe, expect, it } from 'vitest';
import { BundleThreads } from '../../src/archive/bundle-threads.js';
import type { PreviousBundle } from '../../src/ledger/bundle.js';
import { checkHere, type BundleCheck } from '../../src/ledger/verify-archive.js';
import { DAYS, KEY, makeChain, seal } from '../helpers/bundles.js';

const BUNDLES = seal(makeChain(DAYS.map((d) => d.count)));
const [FIRST, MIDDLE] = BUNDLES;
const here = checkHere([KEY]);

describe('BundleThreads', () => {
  const threads = new BundleThreads([KEY], 2);
  afterAll(() => threads.close());

  // Bytes the checker may take: a copy that owns its memory.
  const owned = (bytes: Buffer) => Buffer.from(new Uint8Array(bytes).buffer);

  it('gives what a check on this thread gives, for intact and tampered bundles', async () => {
    const tampered = Buffer.from(MIDDLE!.bytes);
    const at = tampered.indexOf('user.login', MIDDLE!.bytes.indexOf('\n') + 1);
    tampered[at] = tampered[at]! ^ 1;
    const cases = [
      { bytes: FIRST!.bytes, previous: undefined, sizes: [3, FIRST!.manifest.last_seq] },
      { bytes: MIDDLE!.bytes, previous: FIRST!.previous, sizes: [MIDDLE!.manifest.first_seq + 1] },
      { bytes: tampered, previous: FIRST!.previous, sizes: [] },
      { bytes: MIDDLE!.bytes, previous: undefined, sizes: [] }, // checked without its predecessor
    ];
    const onThreads = await Promise.all(cases.map((c) => threads.check(owned(c.bytes), c.previous, c.sizes)));
    const onThisThread = await Promise.all(cases.map((c) => here.check(c.bytes, c.previous, c.sizes)));
    // TileNodes compared by what they hold.
    const plain = (checks: BundleCheck[]) => checks.map((c) => ({ ...c, nodes: c.nodes.entries() }));
    expect(plain(onThreads)).toEqual(plain(onThisThread));
    expect(onThreads[0]!.roots.size).toBe(2);
    expect(onThreads[2]!.failures.length).toBeGreaterThan(0);
  });

  it('moves bytes that own their memory, and copies a view of a larger buffer', async () => {
    const bytes = owned(FIRST!.bytes);
    const checked = threads.check(bytes, undefined, []);
    expect(bytes.byteLength).toBe(0); // transferred
    const view = Buffer.concat([FIRST!.bytes, Buffer.from('trailing')]).subarray(0, FIRST!.bytes.length);
    const viewChecked = threads.check(view, undefined, []);
    expect(view.equals(FIRST!.bytes)).toBe(true);
    expect((await checked).failures).toEqual([]);
    expect((await viewChecked).failures).toEqual([]);
  });

  it('reads bundles into memory that comes back from the thread once checked, for the next bundle', async () => {
    const bytes = threads.memory(FIRST!.bytes.length);
    FIRST!.bytes.copy(bytes);
    const check = await threads.check(bytes, undefined, []);
    expect(check.failures).toEqual([]);
    expect(bytes.byteLength).toBe(0); // moved to the thread
    // The same memory, back: it still holds the bundle checked in it.
    expect(threads.memory(FIRST!.bytes.length).equals(FIRST!.bytes)).toBe(true);
  });

  it('reuses memory on this thread too', async () => {
    const checker = checkHere([KEY]);
    const bytes = checker.memory(FIRST!.bytes.length);
    FIRST!.bytes.copy(bytes);
    expect((await checker.check(bytes, undefined, [])).failures).toEqual([]);
    expect(checker.memory(10).buffer).toBe(bytes.buffer);
  });

  it('answers a bundle whose lines cannot be split as unreadable, as a check on this thread does', async () => {
    const empty = Buffer.from(MIDDLE!.bytes.toString().replace(/\n/, '\n\n'));
    const onThread = await threads.check(owned(empty), undefined, []);
    expect(onThread.unreadable).toEqual({ seq: MIDDLE!.manifest.first_seq, reason: `line 2, where event ${MIDDLE!.manifest.first_seq} belongs, is empty` });
    expect(onThread.failures).toEqual([onThread.unreadable]);
    expect((await here.check(empty, undefined, [])).unreadable).toEqual(onThread.unreadable);
  });

  it('rejects a check that throws on its thread, and goes on checking', async () => {
    // A caller's mistake: a previous bundle without its manifest.
    const broken = { manifestSha256: FIRST!.previous.manifestSha256 } as PreviousBundle;
    await expect(threads.check(owned(MIDDLE!.bytes), broken, [])).rejects.toThrow(/task failed on a worker thread: TypeError/);
    expect((await threads.check(owned(FIRST!.bytes), undefined, [])).failures).toEqual([]);
  });

  it('admits one bundle per thread and one more, then waits for a release', async () => {
    const releases = await Promise.all([threads.admit(), threads.admit(), threads.admit()]);
    let admitted = false;
    const fourth = threads.admit().then((release) => {
      admitted = true;
      return release;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(admitted).toBe(false);
    releases[0]!();
    releases[0]!(); // a second release of the same place gives nothing back
    const release = await fourth;
    expect(admitted).toBe(true);
    for (const r of [...releases.slice(1), release]) r();
  });
});
