// A one-line progress bar for long commands (seal, verify) on a terminal.

export type Progress = (label: string, done: number, total: number) => void;

// Redraws at most this often: verification reports progress thousands of times a second, and a
// write to a terminal is synchronous.
const REDRAW_MS = 100;
const WIDTH = 30;

/** A progress bar drawn on `stream` when it is a terminal; undefined when it is not. */
export function progressBar(stream: Pick<NodeJS.WriteStream, 'isTTY' | 'write'>, now: () => number = performance.now.bind(performance)): Progress | undefined {
  if (!stream.isTTY) return undefined;
  let drawn = -Infinity;
  return (label, done, total) => {
    const at = now();
    if (at - drawn < REDRAW_MS && done < total) return;
    drawn = at;
    const filled = Math.round((Math.min(done, total) / Math.max(total, 1)) * WIDTH);
    stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${done}/${total}`);
  };
}
