import { randomFillSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEvent, eventHash, GENESIS_PREV, indexColumns, type AuditEvent } from '../../src/ledger/event.js';
import { canonicalBytes, canonicalize } from '../../src/ledger/jcs.js';
import { DEFAULT_POLICY, splitPersonal, type PersonalPolicy } from '../../src/ledger/personal.js';
import { uuidv7, uuidv7Time } from '../../src/ledger/uuid.js';
import { checkStoredEvent, type StoredEvent } from '../../src/ledger/verify-events.js';

// Text with every kind of character an app may send: unicode, emoji, combining marks, controls.
const text = fc.string({ unit: 'grapheme', maxLength: 40 });
const number = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(2 ** 53 + 2, 1e21, 1e-7, 0.1 + 0.2, -0, 5e-324, 1.7976931348623157e308),
);
const metadata = fc.dictionary(
  text,
  fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, text, number, fc.boolean(), fc.constant(null), tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: 4 }),
    object: fc.dictionary(text, tie('value'), { maxKeys: 4 }),
  })).value,
  { maxKeys: 5 },
);
const party = fc.record({ id: text, name: text, fields: fc.dictionary(text, text, { maxKeys: 3 }) }, { requiredKeys: ['id'] });

const event: fc.Arbitrary<AuditEvent> = fc.record(
  {
    action: text,
    crud: fc.constantFrom('c', 'r', 'u', 'd'),
    actor: party,
    target: party,
    group: fc.record({ id: text, name: text }, { requiredKeys: ['id'] }),
    description: text,
    is_failure: fc.boolean(),
    fields: fc.dictionary(text, text, { maxKeys: 3 }),
    metadata,
    created: fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString()),
  },
  { requiredKeys: ['action'] },
);

// The default policy and wildcards over every map an app fills: bodies with and without commitments.
const policies = fc.constantFrom<PersonalPolicy | undefined>(undefined, DEFAULT_POLICY, {
  subjects: [...DEFAULT_POLICY.subjects, { subject: '/actor/id', paths: ['/actor/fields/*', '/fields/*', '/metadata/*', '/description'] }],
});

describe('event hashing (ledger format v2)', () => {
  it('the hash recomputed from the stored bytes equals the hash at append', () => {
    fc.assert(
      fc.property(event, fc.integer({ min: 1, max: 2 ** 40 }), policies, (sent, seq, policy) => {
        const split = policy && splitPersonal(sent, policy, randomFillSync);
        const e = split?.event ?? sent;
        const receivedAt = new Date(1_790_000_000_000 + seq);
        const fields = {
          project: uuidv7(),
          environment: uuidv7(),
          seq,
          id: uuidv7(),
          received_at: receivedAt.toISOString(),
          prev: seq === 1 ? GENESIS_PREV : 'ab'.repeat(32),
        };
        const encoded = encodeEvent(e, fields, split?.commitments);
        expect(encoded.body.commitments === undefined).toBe(!split || split.values.length === 0);
        // The template encoder must produce exactly the RFC 8785 form of the whole body.
        expect(encoded.canonical.equals(canonicalBytes(encoded.body))).toBe(true);
        // What verifiers do: only the stored bytes, never a re-serialization of decoded values.
        const stored = Buffer.from(encoded.canonical);
        expect(eventHash(stored).equals(encoded.hash)).toBe(true);
        expect(canonicalize(JSON.parse(stored.toString('utf8')))).toBe(stored.toString('utf8'));

        const row: StoredEvent = {
          seq,
          id: fields.id,
          received_at: receivedAt,
          prev: Buffer.from(fields.prev, 'hex'),
          hash: encoded.hash,
          canonical: stored,
          columns: indexColumns(e),
        };
        const prevHash = seq === 1 ? undefined : Buffer.from(fields.prev, 'hex');
        expect(checkStoredEvent(row, { project: fields.project, environment: fields.environment }, prevHash)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('puts the ledger fields and the event under their names, canonically ordered', () => {
    const { canonical, body } = encodeEvent(
      { action: 'user.login', actor: { id: 'u1' } },
      { project: 'p', environment: 'e', seq: 1, id: 'i', received_at: '2026-01-01T00:00:00.000Z', prev: GENESIS_PREV },
    );
    expect(body.v).toBe(2);
    expect(canonical.toString()).toBe(
      `{"environment":"e","event":{"action":"user.login","actor":{"id":"u1"}},"id":"i","prev":"${GENESIS_PREV}","project":"p","received_at":"2026-01-01T00:00:00.000Z","seq":1,"v":2}`,
    );
    const withCommitments = encodeEvent(
      { action: 'user.login', actor: { id: 'u1' } },
      { project: 'p', environment: 'e', seq: 1, id: 'i', received_at: '2026-01-01T00:00:00.000Z', prev: GENESIS_PREV },
      { '/actor/name': 'ab'.repeat(32) },
    );
    expect(withCommitments.canonical.toString()).toBe(
      `{"commitments":{"/actor/name":"${'ab'.repeat(32)}"},"environment":"e","event":{"action":"user.login","actor":{"id":"u1"}},"id":"i","prev":"${GENESIS_PREV}","project":"p","received_at":"2026-01-01T00:00:00.000Z","seq":1,"v":2}`,
    );
  });

  it('refuses a body of another format version, saying so', () => {
    const fields = { project: 'p', environment: 'e', seq: 1, id: 'i', received_at: '2026-01-01T00:00:00.000Z', prev: GENESIS_PREV };
    const v3 = Buffer.from(encodeEvent({ action: 'a' }, fields).canonical.toString().replace('"v":2', '"v":3'));
    const row: StoredEvent = { ...fields, received_at: new Date(fields.received_at), prev: Buffer.from(GENESIS_PREV, 'hex'), hash: eventHash(v3), canonical: v3, columns: indexColumns({ action: 'a' }) };
    expect(checkStoredEvent(row, { project: 'p', environment: 'e' }, undefined).map((f) => f.reason)).toEqual([
      'event version 3 is not one this verifier knows (it knows 1, 2)',
    ]);
  });

  it('any changed byte changes the hash and fails the check', () => {
    const fields = { project: 'p', environment: 'e', seq: 1, id: 'i', received_at: '2026-01-01T00:00:00.000Z', prev: GENESIS_PREV };
    const encoded = encodeEvent({ action: 'user.login', actor: { id: 'u1' } }, fields);
    const tampered = Buffer.from(encoded.canonical.toString().replace('u1', 'u2'));
    const row: StoredEvent = {
      seq: 1,
      id: 'i',
      received_at: new Date(fields.received_at),
      prev: Buffer.alloc(32),
      hash: encoded.hash,
      canonical: tampered,
      columns: indexColumns({ action: 'user.login', actor: { id: 'u1' } }),
    };
    const failures = checkStoredEvent(row, { project: 'p', environment: 'e' }, undefined);
    expect(failures.map((f) => f.reason)).toEqual([
      'hash does not match the stored bytes',
      'column actor_id does not match the stored bytes',
    ]);
  });
});

describe('uuidv7Time', () => {
  it('reads back the milliseconds of a UUIDv7, and refuses anything else', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (ms) => uuidv7Time(uuidv7(ms)) === ms));
    expect(uuidv7Time(uuidv7(1_700_000_000_123).toUpperCase())).toBe(1_700_000_000_123);
    for (const other of ['', 'not-a-uuid', '6ba7b810-9dad-11d1-80b4-00c04fd430c8', '01890a5d-ac96-774b-7cce-b302099a8057', `${uuidv7()}0`]) {
      expect(uuidv7Time(other), other).toBeUndefined();
    }
  });
});
