import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Creates folder `dir` and its missing parents (with `mode`, default 0o777 less the umask), like
 * `mkdir -p`, and throws the first error (ENOENT, EACCES, ENOTDIR…) naming the folder it could not
 * make. Not fs.mkdir's `recursive`: under a file system that refuses new entries with ENOENT
 * (/proc, /sys) Node 20's recursive mkdir retries for ever instead of failing.
 */
export async function makeDirectory(dir: string, mode?: number): Promise<void> {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const found = await stat(at).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (found) {
      if (!found.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a folder, mkdir '${at}'`), { code: 'ENOTDIR' });
      break;
    }
    missing.push(at);
    if (path.dirname(at) === at) break;
  }
  for (const folder of missing.reverse()) {
    await mkdir(folder, mode === undefined ? undefined : { mode }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error; // made meanwhile by another process: fine
    });
  }
}
