import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapLimited } from '../../src/ledger/verify-archive.js';

describe('mapLimited', () => {
  it('runs at most `size` tasks at once and gives the results in item order', async () => {
    let running = 0;
    let most = 0;
    const results = await mapLimited([5, 1, 4, 2, 3, 0], 3, async (ms) => {
      most = Math.max(most, ++running);
      await sleep(ms);
      running--;
      return ms * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(3);
  });

  it('throws the first error at once and starts no task after it', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const failing = mapLimited([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      if (i === 1) throw new Error('task 1 failed');
      await sleep(20);
      ended.push(i);
    });
    await expect(failing).rejects.toThrow('task 1 failed');
    expect(ended).toEqual([]); // task 0 was still running
    await sleep(60);
    // Task 0 ended on its own; no task started after task 1 failed.
    expect(ended).toEqual([0]);
    expect(started).toEqual([0, 1]);
  });
});
