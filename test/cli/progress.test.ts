import { describe, expect, it } from 'vitest';
import { progressBar } from '../../src/cli/progress.js';

function terminal(isTTY: boolean) {
  const written: string[] = [];
  return { stream: { isTTY, write: (text: string) => written.push(text) > 0 }, written };
}

describe('progressBar', () => {
  it('draws nothing, and is nothing, when the stream is not a terminal', () => {
    expect(progressBar(terminal(false).stream)).toBeUndefined();
  });

  it('redraws at most every 100 ms, but always the last step', () => {
    const { stream, written } = terminal(true);
    let clock = 0;
    const bar = progressBar(stream, () => clock)!;
    for (let done = 0; done <= 1000; done++) {
      bar('chain', done, 1000);
      clock += 1; // 1 ms a step: 1,001 reports over one second
    }
    expect(written.length).toBe(11); // at 0, 100, ..., 900 ms, then the last step
    expect(written[0]).toBe(`\rchain [${'.'.repeat(30)}] 0/1000`);
    expect(written.at(-1)).toBe(`\rchain [${'#'.repeat(30)}] 1000/1000`);
    clock += 100;
    bar('chain', 500, 1000);
    expect(written.at(-1)).toBe(`\rchain [${'#'.repeat(15)}${'.'.repeat(15)}] 500/1000`);
  });
});
