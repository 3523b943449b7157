import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDirectory } from '../src/make-directory.js';

describe('makeDirectory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-mkdir-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('makes the folder and its missing parents, with the mode given, and leaves an existing one be', async () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    await makeDirectory(deep, 0o700);
    expect((await stat(deep)).isDirectory()).toBe(true);
    expect((await stat(path.join(dir, 'a'))).mode & 0o777).toBe(0o700);
    await makeDirectory(deep);
    await Promise.all([makeDirectory(path.join(dir, 'x', 'y')), makeDirectory(path.join(dir, 'x', 'z'))]); // racing makers
  });

  it('fails, rather than retrying for ever, where the file system refuses new folders (/proc) or a file is in the way', async () => {
    await expect(makeDirectory('/proc/auditledger-nope/archive')).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(path.join(dir, 'file'), '');
    await expect(makeDirectory(path.join(dir, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
