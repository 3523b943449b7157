// Bundles of a small chain, sealed day by day as the sealing job does, for tests of bundle checks.
import { BundleBuilder, manifestSha256, type BundleEvent, type BundleManifest, type PreviousBundle } from '../../src/ledger/bundle.js';
import { chainOrigin, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { emptyRange, type CompactRange } from '../../src/ledger/compact-range.js';
import { encodeEvent, GENESIS_PREV, type EncodedEvent } from '../../src/ledger/event.js';
import { generateSigningKey } from '../../src/ledger/keys.js';
import { uuidv7 } from '../../src/ledger/uuid.js';

export const PROJECT = 'acme';
export const ENVIRONMENT = 'production';
export const KEY = generateSigningKey('ledger.example');
export const OTHER_KEY = generateSigningKey('ledger.example');
export const ORIGIN = chainOrigin('ledger.example', PROJECT, ENVIRONMENT);
export const DAYS = [
  { partition: '2024-03-01', count: 13 },
  { partition: '2024-03-02', count: 21 },
  { partition: '2024-03-03', count: 9 },
];

// A chain of events received over consecutive UTC days, `counts[d]` on day d of DAYS.
export function makeChain(counts: readonly number[], project = PROJECT): EncodedEvent[] {
  const events: EncodedEvent[] = [];
  counts.forEach((count, day) => {
    const midnight = Date.parse(`${DAYS[0]!.partition}T00:00:00Z`) + day * 86_400_000;
    for (let i = 0; i < count; i++) {
      const time = midnight + (i + 1) * 1000;
      const seq = events.length + 1;
      events.push(
        encodeEvent(
          { action: seq % 2 ? 'user.login' : 'document.update', crud: 'u', actor: { id: `user-${seq % 5}` } },
          {
            project,
            environment: ENVIRONMENT,
            seq,
            id: uuidv7(time),
            received_at: new Date(time).toISOString(),
            prev: events.at(-1)?.hash.toString('hex') ?? GENESIS_PREV,
          },
        ),
      );
    }
  });
  return events;
}

export const stored = (e: EncodedEvent): BundleEvent => ({
  seq: e.body.seq,
  hash: e.hash,
  prev: Buffer.from(e.body.prev, 'hex'),
  canonical: e.canonical,
});

export interface Sealed {
  bytes: Buffer;
  manifest: BundleManifest;
  previous: PreviousBundle;
  endRange: CompactRange;
  root: Buffer;
}

// Seals the chain day by day, each bundle continuing the one before, as the sealing job does.
export function seal(events: readonly EncodedEvent[], counts = DAYS.map((d) => d.count)): Sealed[] {
  const sealed: Sealed[] = [];
  let offset = 0;
  counts.forEach((count, day) => {
    const before = sealed.at(-1);
    const builder = new BundleBuilder({
      project: PROJECT,
      environment: ENVIRONMENT,
      partition: DAYS[day]!.partition,
      startRange: before?.endRange ?? emptyRange(),
      firstPrev: before?.manifest.last_hash ?? GENESIS_PREV,
      previousManifestSha256: before?.previous.manifestSha256 ?? null,
    });
    const lines = events.slice(offset, offset + count).map((e) => builder.add(stored(e)));
    offset += count;
    const checkpoint = signCheckpoint({ origin: ORIGIN, size: offset, root: builder.root }, KEY);
    const { manifest, manifestLine } = builder.finish({ checkpoint, key: KEY });
    sealed.push({
      bytes: Buffer.concat([manifestLine, ...lines]),
      manifest,
      previous: { manifest, manifestSha256: manifestSha256(manifestLine) },
      endRange: builder.endRange,
      root: builder.root,
    });
  });
  return sealed;
}

