import { execFileSync } from 'node:child_process';
import { mkdtemp, open, readdir, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveConflictError, fileBody, MAX_OBJECT_BYTES, objectReadProblem, ObjectTooLargeError, UnreadableObjectError } from '../../src/archive/archive.js';
import { LocalArchive } from '../../src/archive/local.js';

describe('local folder archive', () => {
  let dir: string;
  let archive: LocalArchive;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-archive-'));
    archive = new LocalArchive(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('round-trips bytes and leaves the object read-only, with no temporary file behind', async () => {
    const bytes = Buffer.from('{"checkpoint": 1}\n');
    await archive.put('checkpoints/p/e/1.note', bytes);
    expect(await archive.get('checkpoints/p/e/1.note')).toEqual(bytes);
    expect((await stat(path.join(dir, 'checkpoints/p/e/1.note'))).mode & 0o777).toBe(0o444);
    expect(await readdir(path.join(dir, 'checkpoints/p/e'))).toEqual(['1.note']);
    expect(await archive.get('checkpoints/p/e/2.note')).toBeUndefined();
  });

  it('reads an object into the memory it is given, at its start', async () => {
    const bytes = Buffer.from('{"bundle": 1}\n');
    await archive.put('bundles/into', bytes);
    const memory = Buffer.alloc(64, 0xff);
    const asked: number[] = [];
    const read = await archive.get('bundles/into', (size) => (asked.push(size), memory));
    expect(asked).toEqual([bytes.length]);
    expect(read).toEqual(bytes);
    expect(read!.buffer).toBe(memory.buffer);
    expect(memory.subarray(0, bytes.length)).toEqual(bytes);
    expect(memory[bytes.length]).toBe(0xff);
  });

  it('refuses a FIFO where an object is, at once, and a file that reads shorter than its size', async () => {
    await archive.put('bundles/marker', Buffer.from('x')); // makes the folder
    execFileSync('mkfifo', [path.join(dir, 'bundles/fifo')]);
    await expect(archive.get('bundles/fifo')).rejects.toThrow(new UnreadableObjectError('bundles/fifo', 'is not a regular file (a FIFO, a socket or a device)'));
    // A kernel file: 4096 bytes by its size, a few when read.
    await symlink('/sys/devices/system/cpu/online', path.join(dir, 'bundles/short'));
    const short = archive.get('bundles/short');
    await expect(short).rejects.toThrow(UnreadableObjectError);
    await expect(short).rejects.toThrow(/^archive object bundles\/short ended at byte \d+ of 4096$/);
    expect(objectReadProblem(await short.catch((error: unknown) => error))).toMatch(/^the object ended at byte \d+ of 4096$/);
  });

  it('reads an object over 2 GiB (fs.readFile stops there), and refuses one over MAX_OBJECT_BYTES', async () => {
    const size = 2 ** 31 + 5;
    const file = path.join(dir, 'big/sparse');
    await archive.put('big/marker', Buffer.from('x')); // makes the folder
    await writeFile(file, '');
    await truncate(file, size);
    const handle = await open(file, 'r+');
    await handle.write('tail\n', size - 5);
    await handle.close();
    const bytes = (await archive.get('big/sparse'))!;
    expect(bytes.length).toBe(size);
    expect(bytes.subarray(-5).toString()).toBe('tail\n');

    await truncate(file, MAX_OBJECT_BYTES + 1);
    const refused = archive.get('big/sparse');
    await expect(refused).rejects.toThrow(ObjectTooLargeError);
    await expect(refused).rejects.toMatchObject({ key: 'big/sparse', size: MAX_OBJECT_BYTES + 1 });
    await rm(file);
  });

  it('accepts the same bytes again and refuses different bytes', async () => {
    await archive.put('a/same', Buffer.from('one'));
    await archive.put('a/same', Buffer.from('one'));
    await expect(archive.put('a/same', Buffer.from('two'))).rejects.toThrow(ArchiveConflictError);
    expect((await archive.get('a/same'))!.toString()).toBe('one');
  });

  it('of two racing writers with different bytes, exactly one wins', async () => {
    const results = await Promise.allSettled([archive.put('race/x', Buffer.from('left')), archive.put('race/x', Buffer.from('right'))]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(['left', 'right']).toContain((await archive.get('race/x'))!.toString());
  });

  it('lists keys under a prefix, skipping unfinished writes', async () => {
    await writeFile(path.join(dir, 'a', 'torn.abc.partial'), 'half');
    expect(await archive.list('a/')).toEqual(['a/same']);
    expect(await archive.list('checkpoints/')).toEqual(['checkpoints/p/e/1.note']);
    expect(await archive.list('none/')).toEqual([]);
  });

  it('stores a file body as a stream, compares by SHA-256, and reads the digest back as a stream', async () => {
    const file = path.join(dir, 'big.source');
    await writeFile(file, Buffer.alloc(3_000_000, 7));
    const body = await fileBody(file);
    expect(body.size).toBe(3_000_000);
    await archive.put('files/big', body);
    expect((await archive.sha256('files/big'))!.equals(body.sha256)).toBe(true);
    await archive.put('files/big', Buffer.alloc(3_000_000, 7)); // the same bytes in memory: a no-op
    await writeFile(file, Buffer.alloc(3_000_000, 8));
    await expect(archive.put('files/big', await fileBody(file))).rejects.toThrow(ArchiveConflictError);
    expect(await archive.sha256('files/none')).toBeUndefined();
  });

  it('refuses keys that could leave the folder', async () => {
    for (const key of ['../escape', '/abs', 'a//b', 'a/./b', '', 'a/../../b']) {
      await expect(archive.put(key, Buffer.from('x'))).rejects.toThrow(/invalid archive key/);
    }
  });
});
