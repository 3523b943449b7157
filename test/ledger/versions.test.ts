// Every verifier refuses a format version it does not know, naming the version found and the ones
// it knows (docs/format.md, "Versions"): bundle verification, verify-archive, verify-proof and the
// stored-events verifier.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signManifest, verifyBundle, type UnsignedManifest } from '../../src/ledger/bundle.js';
import { signCheckpoint } from '../../src/ledger/checkpoint.js';
import { encodeEvent, eventHash, FORMAT_VERSION, GENESIS_PREV, indexColumns, type AuditEvent } from '../../src/ledger/event.js';
import { checkHere, verifyArchivedChain, type ChainObjects } from '../../src/ledger/verify-archive.js';
import { checkStoredEvent } from '../../src/ledger/verify-events.js';
import { verifyProofDocument } from '../../src/ledger/proof-document.js';
import { MANIFEST_VERSION } from '../../src/ledger/version.js';
import { ENVIRONMENT, KEY, ORIGIN, PROJECT } from '../helpers/bundles.js';

const UNKNOWN = 99;
const refused = (what: 'event' | 'manifest') =>
  new RegExp(`^${what} version ${UNKNOWN} is not one this verifier knows \\(it knows ([0-9]+, )*${what === 'event' ? FORMAT_VERSION : MANIFEST_VERSION}(, [0-9]+)*\\)$`);

const EVENT: AuditEvent = { action: 'user.login', actor: { id: 'u-1' } };
const RECEIVED = '2026-11-29T10:00:00.000Z';

/**
 * The one event of a chain, its body at `v` (the encoder writes only the current version), with a
 * `commitments` member when `committed`.
 */
function eventAt(v: number, committed = false) {
  const fields = { project: PROJECT, environment: ENVIRONMENT, seq: 1, id: '01a226bf-4900-7a1b-8c2d-3e4f5a6b7c8d', received_at: RECEIVED, prev: GENESIS_PREV };
  const current = encodeEvent(EVENT, fields, committed ? { '/actor/name': 'ab'.repeat(32) } : undefined).canonical.toString('utf8');
  const canonical = Buffer.from(current.replace(/"v":[0-9]+}$/, `"v":${v}}`), 'utf8');
  return { canonical, hash: eventHash(canonical), fields };
}

/** A one-event bundle of that event, its manifest at `manifestV` with `extra` fields, validly signed. */
function bundleOf(eventV: number, manifestV: number, extra: Record<string, unknown> = {}, committed = false) {
  const { canonical, hash } = eventAt(eventV, committed);
  const checkpoint = signCheckpoint({ origin: ORIGIN, size: 1, root: hash }, KEY);
  const line = Buffer.concat([canonical, Buffer.from('\n')]);
  const fields = {
    v: manifestV,
    project: PROJECT,
    environment: ENVIRONMENT,
    partition: RECEIVED.slice(0, 10),
    first_seq: 1,
    last_seq: 1,
    count: 1,
    first_prev: GENESIS_PREV,
    last_hash: hash.toString('hex'),
    start_range: { size: 0, hashes: [] },
    checkpoint,
    consistency_proof: [],
    events_sha256: createHash('sha256').update(line).digest('hex'),
    previous_manifest_sha256: null,
    ...extra,
  } as unknown as UnsignedManifest;
  return { bytes: Buffer.concat([signManifest(fields, KEY).manifestLine, line]), checkpoint, canonical, hash };
}

describe('format versions a verifier does not know', () => {
  it('the helpers make a bundle that verifies at the current versions', () => {
    expect(verifyBundle(bundleOf(FORMAT_VERSION, MANIFEST_VERSION).bytes, [KEY]).failures).toEqual([]);
  });

  it('bundle verification refuses a manifest version, before judging its fields', () => {
    for (const extra of [{}, { commitments_root: 'new in that version' }]) {
      const { manifest, failures } = verifyBundle(bundleOf(FORMAT_VERSION, UNKNOWN, extra).bytes, [KEY]);
      expect(manifest).toBeNull();
      expect(failures).toHaveLength(1);
      expect(failures[0]!.reason).toMatch(refused('manifest'));
    }
  });

  it('bundle verification refuses an event version, at the event', () => {
    const { failures } = verifyBundle(bundleOf(UNKNOWN, MANIFEST_VERSION).bytes, [KEY]);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.seq).toBe(1);
    expect(failures[0]!.reason).toMatch(refused('event'));
  });

  it('verify-archive reports the bundle whose manifest version it does not know', async () => {
    const { bytes, checkpoint } = bundleOf(FORMAT_VERSION, UNKNOWN);
    const objects = new Map([['b', bytes], ['n/1', Buffer.from(checkpoint)]]);
    const chain: ChainObjects = {
      project: PROJECT,
      environment: ENVIRONMENT,
      bundles: [{ key: 'b', day: RECEIVED.slice(0, 10), part: 1 }],
      checkpoints: [{ key: 'n/1', size: 1 }],
      checkpointKey: (size) => `n/${size}`,
      tiles: [],
      tileKey: () => 't',
    };
    const { failures } = await verifyArchivedChain(chain, {}, async (key) => objects.get(key) ?? 'gone', [KEY], checkHere([KEY]));
    const bundleFailures = failures.filter((f) => f.kind === 'bundle');
    expect(bundleFailures).toHaveLength(1);
    expect(bundleFailures[0]).toMatchObject({ key: 'b' });
    expect(bundleFailures[0]!.reason).toMatch(refused('manifest'));
  });

  it('verify-proof refuses an event whose version it does not know, though its proof holds', () => {
    const { canonical, hash } = eventAt(UNKNOWN);
    const note = signCheckpoint({ origin: ORIGIN, size: 1, root: hash }, KEY);
    const doc = { leaf_index: 0, tree_size: 1, leaf_hash: hash.toString('base64'), proof: [], checkpoint: note, canonical: canonical.toString('utf8') };
    expect(() => verifyProofDocument(doc, [KEY])).toThrow(refused('event'));
    expect(verifyProofDocument({ ...doc, canonical: undefined }, [KEY])).toMatch(/^leaf index 0 \(seq 1; its hash only: no event bytes were given to check\) is included/);
  });

  it('the stored-events verifier refuses an event version it does not know', () => {
    const { canonical, hash, fields } = eventAt(UNKNOWN);
    const row = {
      seq: 1,
      id: fields.id,
      received_at: new Date(RECEIVED),
      prev: Buffer.from(GENESIS_PREV, 'hex'),
      hash,
      canonical,
      columns: indexColumns(EVENT),
    };
    const failures = checkStoredEvent(row, { project: PROJECT, environment: ENVIRONMENT }, undefined);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.reason).toMatch(refused('event'));
  });
});

// A chain appended before format v2 holds v1 bodies: v2 without `commitments` (docs/format.md, "Versions").
describe('format version 1', () => {
  const V1_COMMITTED = 'event version 1 has no member commitments (version 2 added it)';

  function storedRow(v: number, committed: boolean) {
    const { canonical, hash, fields } = eventAt(v, committed);
    return { seq: 1, id: fields.id, received_at: new Date(RECEIVED), prev: Buffer.from(GENESIS_PREV, 'hex'), hash, canonical, columns: indexColumns(EVENT) };
  }

  function proofOf(v: number, committed: boolean) {
    const { canonical, hash } = eventAt(v, committed);
    const note = signCheckpoint({ origin: ORIGIN, size: 1, root: hash }, KEY);
    return { leaf_index: 0, tree_size: 1, leaf_hash: hash.toString('base64'), proof: [], checkpoint: note, canonical: canonical.toString('utf8') };
  }

  it('every verifier reads a v1 body', () => {
    expect(verifyBundle(bundleOf(1, MANIFEST_VERSION).bytes, [KEY]).failures).toEqual([]);
    expect(verifyProofDocument(proofOf(1, false), [KEY])).toMatch(/is included/);
    expect(checkStoredEvent(storedRow(1, false), { project: PROJECT, environment: ENVIRONMENT }, undefined)).toEqual([]);
  });

  it('every verifier refuses a v1 body that carries commitments, and reads it at v2', () => {
    const bundleFailures = verifyBundle(bundleOf(1, MANIFEST_VERSION, {}, true).bytes, [KEY]).failures;
    expect(bundleFailures.map((f) => f.reason)).toEqual([V1_COMMITTED]);
    expect(() => verifyProofDocument(proofOf(1, true), [KEY])).toThrow(V1_COMMITTED);
    const stored = checkStoredEvent(storedRow(1, true), { project: PROJECT, environment: ENVIRONMENT }, undefined);
    expect(stored.map((f) => f.reason)).toEqual([V1_COMMITTED]);

    expect(verifyBundle(bundleOf(2, MANIFEST_VERSION, {}, true).bytes, [KEY]).failures).toEqual([]);
    expect(verifyProofDocument(proofOf(2, true), [KEY])).toMatch(/is included/);
    expect(checkStoredEvent(storedRow(2, true), { project: PROJECT, environment: ENVIRONMENT }, undefined)).toEqual([]);
  });
});
