import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const BUILD = fileURLToPath(new URL('../../../shared/tools/tlogcheck/build.sh', import.meta.url));

/**
 * The independent checker (Go's golang.org/x/mod/sumdb/tlog, see ../shared/tools/tlogcheck): the
 * binary at $TLOGCHECK (CI builds it), else built into `dir`; undefined, with the reason printed,
 * when it cannot be built.
 */
export function tlogcheck(dir: string): string | undefined {
  if (process.env.TLOGCHECK && existsSync(process.env.TLOGCHECK)) return process.env.TLOGCHECK;
  try {
    return execFileSync(BUILD, [path.join(dir, 'tlogcheck')], { encoding: 'utf8', timeout: 600_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    console.warn(`tlog-tiles checks with tlogcheck skipped: ${BUILD} could not build it: ${(error as Error).message}`);
    return undefined;
  }
}

/** Runs the checker: its exit code and its output, whatever the code. */
export function runTlogcheck(checker: string, args: string[]): Promise<{ code: number; output: string }> {
  return promisify(execFile)(checker, args).then(
    ({ stdout }) => ({ code: 0, output: stdout }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: `${error.stdout}${error.stderr}` }),
  );
}
