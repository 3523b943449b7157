// A worker thread of BundleThreads: checks the bundles it is sent with verifyParsedBundle.
import { parentPort, workerData } from 'node:worker_threads';
import { BundleError, parseBundle, verifyParsedBundle, type BundleFailure, type PreviousBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';

export interface CheckRequest {
  id: number;
  bytes: Uint8Array;
  previous: PreviousBundle | undefined;
  rootSizes: readonly number[];
}

export type CheckReply =
  | { id: number; failures: BundleFailure[]; roots: [number, Uint8Array][] }
  | { id: number; error: string };

const verifiers = (workerData as { verifiers: VerifierKey[] }).verifiers;

parentPort!.on('message', ({ id, bytes, previous, rootSizes }: CheckRequest) => {
  let reply: CheckReply;
  try {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { failures, roots } = verifyParsedBundle(parseBundle(buffer), buffer, verifiers, previous, rootSizes);
    reply = { id, failures, roots: [...roots] };
  } catch (error) {
    // The main thread parsed these bytes already, so a BundleError here is a bug, reported as one.
    reply = { id, error: error instanceof BundleError ? `bundle parsed twice differently: ${error.message}` : String(error) };
  }
  parentPort!.postMessage(reply);
});
