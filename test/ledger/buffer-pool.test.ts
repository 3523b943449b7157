import { constants } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/ledger/buffer-pool.js';

const memoryOf = (bytes: Uint8Array) => bytes.buffer as ArrayBuffer;

describe('BufferPool', () => {
  it('gives a Buffer of the size asked for at the start of new memory an eighth larger', () => {
    const pool = new BufferPool(2);
    const bytes = pool.take(800);
    expect(bytes.length).toBe(800);
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(900);
    expect(pool.owns(bytes)).toBe(true);
    expect(pool.owns(Buffer.alloc(800))).toBe(false);
  });

  it('asks no more than the largest Buffer there can be', () => {
    // Never touched, so never really taken from the machine.
    expect(new BufferPool(1).take(constants.MAX_LENGTH - 8).buffer.byteLength).toBe(constants.MAX_LENGTH);
  });

  it('reuses memory given back for any size it holds, the smallest that fits first', () => {
    const pool = new BufferPool(2);
    const small = memoryOf(pool.take(100));
    const large = memoryOf(pool.take(1000));
    pool.give(large);
    pool.give(small);
    expect(pool.available).toBe(2);
    expect(pool.take(50).buffer).toBe(small);
    expect(pool.take(900).buffer).toBe(large);
    expect(pool.available).toBe(0);
    // Nothing free holds it: new memory.
    pool.give(small);
    const other = pool.take(200);
    expect(other.buffer).not.toBe(small);
    expect(pool.available).toBe(1);
  });

  it('keeps at most its capacity of free memory, letting the smallest go', () => {
    const pool = new BufferPool(2);
    const taken = [pool.take(10), pool.take(30), pool.take(20)].map(memoryOf);
    for (const memory of taken) pool.give(memory);
    expect(pool.available).toBe(2);
    expect(pool.take(1).buffer).toBe(taken[2]); // the 20-byte one: the 10-byte one was let go
  });

  it('takes back memory that moved to another thread and back, and ignores memory moved away', () => {
    const pool = new BufferPool(1);
    const bytes = pool.take(64);
    bytes.fill(7);
    const back = structuredClone(bytes, { transfer: [memoryOf(bytes)] }); // as a worker thread's answer moves it
    expect(bytes.byteLength).toBe(0);
    pool.give(memoryOf(bytes)); // detached: nothing to reuse
    expect(pool.available).toBe(0);
    pool.give(memoryOf(back));
    const again = pool.take(64);
    expect(pool.owns(again)).toBe(true);
    expect([...again]).toEqual(new Array(64).fill(7)); // the same memory, not cleared
  });
});
