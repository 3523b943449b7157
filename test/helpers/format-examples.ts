// The worked examples of docs/format.md, computed with the ledger's own code from fixed inputs (a
// key seed, ids, times). test/ledger/format-doc.test.ts holds the document to them, so the examples
// cannot drift from the code. To print them (when the format changes, say):
//   npx tsx test/helpers/format-examples.ts
import { pathToFileURL } from 'node:url';
import { BundleBuilder, manifestSha256, type BundleManifest, type SignedManifest } from '../../src/ledger/bundle.js';
import { chainOrigin, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { emptyRange } from '../../src/ledger/compact-range.js';
import { encodeEvent, GENESIS_PREV, type AuditEvent, type EncodedEvent } from '../../src/ledger/event.js';
import { nodeHash } from '../../src/ledger/hash.js';
import { encodeSigningKey, keyIdHex, signingKeyFromSeed, verifierKey } from '../../src/ledger/keys.js';
import { consistencyProof, inclusionProof } from '../../src/ledger/proof.js';
import { encodeTileIndex, tileBytes, tilePath, tilesGrown } from '../../src/ledger/tiles.js';
import { merkleRoot } from '../../src/ledger/tree.js';
import { bundleKey, checkpointKey, tileKey } from '../../src/archive/layout.js';

// Published on purpose: an example key, never one to sign with.
const SEED = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const KEY = signingKeyFromSeed('ledger.example', SEED);
const PROJECT = '0f8e3a52-6c1d-4b7e-9a2f-5d4c3b2a1908';
const ENVIRONMENT = '7b6a5948-3726-4150-8e9d-c0b1a2938475';
const ORIGIN = chainOrigin('ledger.example', PROJECT, ENVIRONMENT);
const DAY = '2026-11-29';

/**
 * The first event exactly as an app sends it: member order, spacing, an escape and 1.0 are the sender's.
 * It holds no value the default personal data policy commits to (a kiosk is not a person), so its
 * body has no `commitments`; the section Personal data commitments has an example that does.
 */
const SENT = `{
  "action": "user.login",
  "crud": "c",
  "actor": { "id": "u-42" },
  "target": { "type": "kiosk", "id": "k-9", "name": "Caf\\u00e9 kiosk" },
  "created": "2026-11-29T09:59:59.500Z",
  "metadata": { "mfa": true, "attempts": 1.0 }
}`;

const LATER: AuditEvent[] = [
  { action: 'document.update', crud: 'u', actor: { id: 'u-42' }, target: { id: 'doc-7', type: 'document' } },
  { action: 'user.logout', crud: 'c', actor: { id: 'u-42' } },
];

// UUIDv7 (RFC 9562) ids with fixed random bits, and the times their first 48 bits hold.
const IDS = ['01a226bf-4900-7a1b-8c2d-3e4f5a6b7c8d', '01a226bf-4ce8-7a1b-8c2d-3e4f5a6b7c8e', '01a226bf-50d0-7a1b-8c2d-3e4f5a6b7c8f'];
const TIMES = ['2026-11-29T10:00:00.000Z', '2026-11-29T10:00:01.000Z', '2026-11-29T10:00:02.000Z'];

function chain(): EncodedEvent[] {
  const events: EncodedEvent[] = [];
  for (const [i, event] of [JSON.parse(SENT) as AuditEvent, ...LATER].entries()) {
    events.push(
      encodeEvent(event, {
        project: PROJECT,
        environment: ENVIRONMENT,
        seq: i + 1,
        id: IDS[i]!,
        received_at: TIMES[i]!,
        prev: events.at(-1)?.hash.toString('hex') ?? GENESIS_PREV,
      }),
    );
  }
  return events;
}

// The day sealed with N = 2: bundle 1 holds events 1 and 2, bundle 2 (same day, part 2) event 3.
function bundles(events: readonly EncodedEvent[]): SignedManifest[] {
  const sealed: SignedManifest[] = [];
  let start = emptyRange();
  for (const part of [events.slice(0, 2), events.slice(2)]) {
    const before = sealed.at(-1);
    const builder = new BundleBuilder({
      project: PROJECT,
      environment: ENVIRONMENT,
      partition: DAY,
      startRange: start,
      firstPrev: before?.manifest.last_hash ?? GENESIS_PREV,
      previousManifestSha256: before ? manifestSha256(before.manifestLine) : null,
    });
    for (const e of part) builder.add({ seq: e.body.seq, hash: e.hash, prev: Buffer.from(e.body.prev, 'hex'), canonical: e.canonical });
    const checkpoint = signCheckpoint({ origin: ORIGIN, size: builder.endRange.size, root: builder.root }, KEY);
    sealed.push(builder.finish({ checkpoint, key: KEY }));
    start = builder.endRange;
  }
  return sealed;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** Every example of docs/format.md by name, as the text of its fenced block (without the final newline). */
export function formatExamples(): Map<string, string> {
  const events = chain();
  const leaves = events.map((e) => e.hash);
  const [first, second] = bundles(events) as [SignedManifest, SignedManifest];
  const note = signCheckpoint({ origin: ORIGIN, size: 3, root: merkleRoot(leaves) }, KEY);
  const examples: [string, string][] = [
    [
      'key',
      [
        `seed (hex):   ${hex(SEED)}`,
        `key name:     ${KEY.name}`,
        `public key:   ${hex(KEY.publicKey)}`,
        `key id:       ${keyIdHex(KEY.keyId)}`,
        `vkey:         ${verifierKey(KEY)}`,
        `signer key:   ${encodeSigningKey(KEY)}`,
      ].join('\n'),
    ],
    ['event-sent', SENT],
    [
      'ledger-fields',
      JSON.stringify({ project: PROJECT, environment: ENVIRONMENT, seq: 1, id: IDS[0], received_at: TIMES[0], prev: GENESIS_PREV }, null, 2),
    ],
    ['event-canonical', events[0]!.canonical.toString('utf8')],
    ['event-hash', `SHA-256(0x00 || canonical) = ${hex(leaves[0]!)}`],
    [
      'chain',
      events
        .slice(1)
        .map((e) => `seq ${e.body.seq}: ${e.canonical.toString('utf8')}\nhash: ${hex(e.hash)}`)
        .join('\n\n'),
    ],
    [
      'tree',
      [
        `leaf 0 = ${hex(leaves[0]!)}`,
        `leaf 1 = ${hex(leaves[1]!)}`,
        `leaf 2 = ${hex(leaves[2]!)}`,
        `MTH(size 2) = SHA-256(0x01 || leaf 0 || leaf 1) = ${hex(nodeHash(leaves[0]!, leaves[1]!))}`,
        `MTH(size 3) = SHA-256(0x01 || MTH(size 2) || leaf 2) = ${hex(merkleRoot(leaves))}`,
        `            base64: ${b64(merkleRoot(leaves))}`,
      ].join('\n'),
    ],
    ['checkpoint', note.trimEnd()],
    [
      'proofs',
      [
        `inclusion of leaf 0 in size 3: ${JSON.stringify(inclusionProof(0, 3, leaves).map(b64))}`,
        `consistency from size 2 to 3:  ${JSON.stringify(consistencyProof(2, 3, leaves).map(b64))}`,
      ].join('\n'),
    ],
    [
      'tile-paths',
      [
        `size 3:      ${[...tilesGrown(0, 3)].map((t) => tilePath({ ...t, kind: 'hash' })).join(' ')}`,
        `size 70000:  tile/0/000 … ${[...tilesGrown(0, 70000)].filter((t) => t.index >= 272 || t.level > 0).map((t) => tilePath({ ...t, kind: 'hash' })).join(' ')}`,
        `index 1234067 at level 0, full: tile/0/${encodeTileIndex(1234067)}`,
        `entry bundle of events 1..3:    ${tilePath({ kind: 'entries', level: 0, index: 0, width: 3 })}`,
      ].join('\n'),
    ],
    ['tile-bytes', hex(tileBytes(leaves)).replace(/(.{64})(?!$)/g, '$1\n')],
    [
      'archive-keys',
      [
        checkpointKey(PROJECT, ENVIRONMENT, 2),
        checkpointKey(PROJECT, ENVIRONMENT, 3),
        bundleKey(PROJECT, ENVIRONMENT, DAY, 1),
        bundleKey(PROJECT, ENVIRONMENT, DAY, 2),
        tileKey(PROJECT, ENVIRONMENT, { level: 0, index: 0, width: 2 }),
        tileKey(PROJECT, ENVIRONMENT, { level: 0, index: 0, width: 3 }),
      ].join('\n'),
    ],
    ['manifest-1-sha256', `SHA-256(bundle 1's first line without "\\n") = ${manifestSha256(first.manifestLine)}`],
    ['manifest-2', JSON.stringify(second.manifest satisfies BundleManifest, null, 2)],
    ['bundle-2', Buffer.concat([second.manifestLine, events[2]!.canonical]).toString('utf8')],
  ];
  return new Map(examples);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const [name, text] of formatExamples()) process.stdout.write(`<!-- format-example: ${name} -->\n\`\`\`\n${text}\n\`\`\`\n\n`);
}
