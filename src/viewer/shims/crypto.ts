// `node:crypto` for the browser bundle (aliased by scripts/build-viewer.mjs): the two SHA-256
// calls src/ledger makes (hash.ts, keys.ts), answered by @noble/hashes, so the ledger's own
// verification code runs in the page unchanged.
import { Buffer } from 'buffer';
import { sha256 } from '@noble/hashes/sha2.js';

function only(algorithm: string): void {
  if (algorithm !== 'sha256') throw new Error(`the viewer's crypto shim has SHA-256 only, not ${algorithm}`);
}

const bytes = (data: string | Uint8Array) => (typeof data === 'string' ? new TextEncoder().encode(data) : data);

/** Node's incremental `createHash('sha256')`: update(string as UTF-8 | bytes), digest() as a Buffer. */
export function createHash(algorithm: string) {
  only(algorithm);
  const state = sha256.create();
  const hasher = {
    update(data: string | Uint8Array) {
      state.update(bytes(data));
      return hasher;
    },
    digest: () => Buffer.from(state.digest()),
  };
  return hasher;
}

/** Node's one-shot `hash('sha256', data, 'buffer')`. */
export function hash(algorithm: string, data: string | Uint8Array): Buffer {
  only(algorithm);
  return Buffer.from(sha256(bytes(data)));
}
