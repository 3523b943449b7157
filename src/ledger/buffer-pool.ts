import { constants } from 'node:buffer';

/**
 * Memory reused for large reads (the bundles a verifier reads one after another), rather than a new
 * Buffer for each. New memory is paid for at its first use, a page at a time, and on some machines
 * that costs more than the read itself: on the 2-core VM this project is measured on, reading a
 * 75 MB file into a new Buffer took 290-370 ms and the first pass over its bytes 150-200 ms more,
 * against 6-10 ms and 3.5 ms into memory used before (2026-12-01).
 *
 * A caller takes memory for each object it reads and gives it back once nothing reads it any more;
 * memory it never gives back is left to the garbage collector. At most `capacity` buffers wait for
 * reuse: beyond that the smallest is let go.
 */
/** Memory to read an object of `size` bytes into: a Buffer of at least that many, read into from its start (BufferPool.take gives one). */
export type ReadInto = (size: number) => Buffer;

// New memory is an eighth larger than asked for: the bundles of a seal run differ in size by
// their events' (76.19 and 76.30 MB in the bench's), and each that does not fit would take new memory.
const HEADROOM = 8;

export class BufferPool {
  /** Free memory, smallest first. */
  private readonly free: ArrayBuffer[] = [];
  /** The memory handed out by take (or given back), so that only that memory is ever reused. */
  private readonly ours = new WeakSet<ArrayBuffer>();

  constructor(private readonly capacity: number) {}

  /**
   * A Buffer of `size` bytes at the start of memory of its own (byteOffset 0): the smallest free
   * memory that holds it, else new memory of an eighth more (at most the largest Buffer there can
   * be, buffer.constants.MAX_LENGTH). Its bytes are not cleared.
   */
  take(size: number): Buffer {
    const at = this.free.findIndex((memory) => memory.byteLength >= size);
    const memory = at >= 0 ? this.free.splice(at, 1)[0]! : (Buffer.allocUnsafeSlow(Math.min(size + Math.floor(size / HEADROOM), constants.MAX_LENGTH)).buffer as ArrayBuffer);
    this.ours.add(memory);
    return Buffer.from(memory, 0, size);
  }

  /** Whether `bytes` lie in memory this pool handed out (take), which may then be given back. */
  owns(bytes: Uint8Array): boolean {
    return this.ours.has(bytes.buffer as ArrayBuffer);
  }

  /**
   * Gives back memory this pool handed out, once nothing reads it: `memory` is that of a Buffer
   * from take, or the same memory back from a worker thread it was moved to (a new ArrayBuffer
   * object over it). Giving memory the pool did not hand out would let a later read overwrite
   * bytes someone else holds; `owns` tells, before any move.
   */
  give(memory: ArrayBuffer): void {
    if (memory.byteLength === 0) return; // detached: it moved elsewhere
    this.ours.add(memory);
    const at = this.free.findIndex((other) => other.byteLength >= memory.byteLength);
    this.free.splice(at < 0 ? this.free.length : at, 0, memory);
    if (this.free.length > this.capacity) this.free.shift();
  }

  /** How many buffers wait for reuse (at most `capacity`). */
  get available(): number {
    return this.free.length;
  }
}
