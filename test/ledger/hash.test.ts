import { describe, expect, it } from 'vitest';
import { decodeHexHash, HASH_SIZE } from '../../src/ledger/hash.js';

describe('decodeHexHash', () => {
  const hex = Buffer.from(Array.from({ length: HASH_SIZE }, (_, i) => i * 7 + 3)).toString('hex');

  it('decodes 64 lowercase hex digits into the memory given, at the byte given', () => {
    const into = Buffer.alloc(2 * HASH_SIZE, 0xee);
    expect(decodeHexHash(hex, into, HASH_SIZE)).toBe(true);
    expect(into.subarray(HASH_SIZE).toString('hex')).toBe(hex);
    expect(into.subarray(0, HASH_SIZE).equals(Buffer.alloc(HASH_SIZE, 0xee))).toBe(true);
  });

  it('refuses anything but 64 lowercase hex digits', () => {
    const into = Buffer.alloc(HASH_SIZE);
    const refused: unknown[] = [
      hex.toUpperCase(),
      `${hex.slice(0, 63)}A`,
      `${hex.slice(0, 63)}g`,
      `${hex.slice(0, 62)} 0`,
      hex.slice(0, 63),
      `${hex}00`,
      '',
      // Characters beyond ASCII, including one whose low byte is a hex digit's ('\u0161' & 0xff is 'a').
      `${hex.slice(0, 63)}\u0161`,
      `${hex.slice(0, 63)}é`,
      Buffer.from(hex),
      null,
      123,
    ];
    for (const text of refused) expect(decodeHexHash(text, into, 0), String(text)).toBe(false);
  });
});
