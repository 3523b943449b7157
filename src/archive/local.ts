import { randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, openSync, read, readSync } from 'node:fs';
import { chmod, copyFile, link, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ArchiveConflictError, assertReadable, bodySha256, checkKey, streamSha256, UnreadableObjectError, type Archive, type ArchiveBody, type ObjectIdentity, type PutResult, type ReadInto, type Retention } from './archive.js';
import { makeDirectory } from '../make-directory.js';

// One read() of a file takes at most 2 GiB.
const READ_PIECE = 2 ** 30;
// Objects up to this size (tiles, checkpoint notes) are opened and read with blocking calls; only a
// larger one's read (a bundle's) goes through the thread pool. From the page cache a small read
// takes microseconds, while each thread-pool round trip of an async read (open, fstat, read, close)
// costs tens of microseconds of CPU: the 3,928 tiles of a million events took 600-740 ms of CPU to
// read async, 45-60 ms blocking (2026-12-01, 2 cores).
const BLOCKING_READ_MAX = 64 * 1024;
const readAsync = promisify(read);

/**
 * The local-folder archive (the embedded default). Each object is written to a temporary file,
 * fsynced, made read-only and linked into place, so a reader never sees half an object, a crash
 * leaves either the whole object or none, and an existing object is never replaced.
 */
export class LocalArchive implements Archive {
  constructor(readonly location: string) {}

  async put(key: string, body: ArchiveBody): Promise<PutResult> {
    checkKey(key);
    const target = path.join(this.location, key);
    const digest = bodySha256(body);
    const existing = await this.sha256(key);
    if (existing) {
      if (existing.equals(digest)) return {};
      throw new ArchiveConflictError(key);
    }
    await makeDirectory(path.dirname(target));
    const temporary = `${target}.${randomBytes(6).toString('hex')}.partial`;
    if (!Buffer.isBuffer(body)) await copyFile(body.path, temporary, constants.COPYFILE_EXCL);
    const file = await open(temporary, Buffer.isBuffer(body) ? 'wx' : 'r+', 0o600);
    try {
      if (Buffer.isBuffer(body)) await file.writeFile(body);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await chmod(temporary, 0o444);
      // link() creates the name only if it is free: of two racing writers, one wins, whole.
      await link(temporary, target);
      await syncDirectory(path.dirname(target));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!(await this.sha256(key))!.equals(digest)) throw new ArchiveConflictError(key);
    } finally {
      await rm(temporary, { force: true });
    }
    return {};
  }

  async sha256(key: string): Promise<Buffer | undefined> {
    checkKey(key);
    try {
      return await streamSha256(createReadStream(path.join(this.location, key)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async identity(key: string): Promise<ObjectIdentity | undefined> {
    checkKey(key);
    try {
      const { ino, size, mtimeNs, ctimeNs } = await stat(path.join(this.location, key), { bigint: true });
      return { bytes: Number(size), stamp: `${ino}:${size}:${mtimeNs}:${ctimeNs}` };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async retention(key: string): Promise<Retention | undefined> {
    checkKey(key);
    try {
      await stat(path.join(this.location, key));
      return { mode: 'NONE' };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  // Read by hand: fs.readFile refuses files over 2 GiB, and a day's bundle of a busy chain is larger.
  async get(key: string, into?: ReadInto): Promise<Buffer | undefined> {
    checkKey(key);
    let file: number;
    try {
      // Non-blocking, so that opening a FIFO where an object was listed does not wait for a writer.
      file = openSync(path.join(this.location, key), constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const stats = fstatSync(file);
      // Named here, not left to read(): a folder of size 0 (as in /sys) would be read as an empty object.
      if (stats.isDirectory()) throw new UnreadableObjectError(key, 'is a folder, not a regular file');
      if (!stats.isFile()) throw new UnreadableObjectError(key, 'is not a regular file (a FIFO, a socket or a device)');
      const { size } = stats;
      assertReadable(key, size);
      const bytes = into ? into(size).subarray(0, size) : Buffer.allocUnsafeSlow(size);
      let done = 0;
      while (done < size) {
        const piece = Math.min(size - done, READ_PIECE);
        const bytesRead = size <= BLOCKING_READ_MAX ? readSync(file, bytes, done, piece, done) : (await readAsync(file, bytes, done, piece, done)).bytesRead;
        if (bytesRead === 0) throw new UnreadableObjectError(key, `ended at byte ${done} of ${size}`);
        done += bytesRead;
      }
      return bytes;
    } finally {
      closeSync(file);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (dir: string) => {
      let entries;
      try {
        entries = await readdir(path.join(this.location, dir), { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const entry of entries) {
        const key = dir ? `${dir}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(key);
        else if (!entry.name.endsWith('.partial') && key.startsWith(prefix)) keys.push(key);
      }
    };
    await walk('');
    return keys.sort();
  }
}

/** A rename is durable only once its directory entry is on disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
