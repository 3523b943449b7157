// A worker thread of BundleThreads: checks the bundles it is sent with checkBundleBytes.
import type { BundleFailure, PreviousBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';
import { checkBundleBytes } from '../ledger/verify-archive.js';
import { movable, serveTasks } from '../thread-pool.js';

export interface BundleTask {
  bytes: Uint8Array;
  previous: PreviousBundle | undefined;
  rootSizes: readonly number[];
}

export interface BundleResult {
  failures: BundleFailure[];
  roots: [number, Uint8Array][];
  /** The bundle's leaf hashes end to end, for the tile check. */
  leaves: Uint8Array;
  /** TileNodes.entries() of the bundle's tree, for the tile check. */
  nodes: [string, Uint8Array][];
  /** BundleCheck.unreadable: why the event lines could not be split. */
  unreadable: BundleFailure | undefined;
  /** The task's bytes, moved back for their memory to be reused. */
  bytes: Uint8Array;
}

serveTasks<readonly VerifierKey[], BundleTask, BundleResult>(
  ({ bytes, previous, rootSizes }, verifiers) => {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { failures, roots, leaves, nodes, unreadable } = checkBundleBytes(buffer, verifiers, previous, rootSizes);
    return { failures, roots: [...roots], leaves: movable(leaves), nodes: nodes.entries(), unreadable, bytes };
  },
  // The leaf hashes, 32 bytes an event, and the bundle's memory move back rather than being copied.
  ({ leaves, bytes }) => [leaves.buffer as ArrayBuffer, bytes.buffer as ArrayBuffer],
);
