import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEvent, GENESIS_PREV, type AuditEvent } from '../../src/ledger/event.js';
import { canonicalize } from '../../src/ledger/jcs.js';
import { uuidv7Time } from '../../src/ledger/uuid.js';
import {
  commitValue,
  DEFAULT_POLICY,
  ERASED_TEXT,
  markersAsText,
  MISMATCH_TEXT,
  formatPointer,
  isErased,
  isMismatch,
  parsePointer,
  policyProblems,
  restorePersonal,
  splitPersonal,
  subjectDigest,
  type PersonalValue,
} from '../../src/ledger/personal.js';

/** Salts 0x00, 0x01, ... 0xff, 0x00, ...: the worked example's, so the commitments are fixed. */
const counting = (buffer: Buffer) => {
  for (let i = 0; i < buffer.length; i++) buffer[i] = i & 0xff;
};

const stored = (values: PersonalValue[]) => new Map(values.map((v) => [v.pointer, v]));

describe('personal data commitments', () => {
  it('commits to a value as SHA-256("auditledger-commitment-v1" || 0x00 || salt || canonical JSON)', () => {
    const salt = Buffer.alloc(32, 7);
    const expected = createHash('sha256').update('auditledger-commitment-v1\0').update(salt).update('"Alice"').digest('hex');
    expect(commitValue('"Alice"', salt)).toBe(expected);
    expect(() => commitValue('"Alice"', Buffer.alloc(16))).toThrow(RangeError);
  });

  it('splits the default policy\'s values out of an event (worked example, fixed salts)', () => {
    const event: AuditEvent = { action: 'user.login', actor: { id: 'user-42', name: 'Alice Example' }, source_ip: '192.0.2.1' };
    const split = splitPersonal(event, DEFAULT_POLICY, counting);
    expect(canonicalize(split.event)).toBe('{"action":"user.login","actor":{"id":"user-42"}}');
    expect(split.commitments).toEqual({
      '/actor/name': '2ce97d556334ba750e20428259f7d03ea0300ab74487637a49d077e92e203772',
      '/source_ip': 'af2c45c4aaf6b51cd2d8d2edd7101de0fab3a0c6b8251474afd1a35cc539e184',
    });
    expect(split.values.map((v) => [v.pointer, v.subject, v.value, v.salt.toString('hex')])).toEqual([
      ['/actor/name', 'user-42', '"Alice Example"', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'],
      ['/source_ip', 'user-42', '"192.0.2.1"', '202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f'],
    ]);
    // The event as sent is left as it was.
    expect(event.actor?.name).toBe('Alice Example');
  });

  it('takes the target\'s name only when the target is a person type, and records a missing subject as null', () => {
    const machine = splitPersonal({ action: 'a', target: { id: 't', name: 'db-1', type: 'server' } }, DEFAULT_POLICY, counting);
    expect(machine.values).toEqual([]);
    expect(machine.commitments).toEqual({});
    const person = splitPersonal({ action: 'a', target: { id: 't', name: 'Bob', type: 'user' }, source_ip: '::1' }, DEFAULT_POLICY, counting);
    expect(person.values.map((v) => [v.pointer, v.subject])).toEqual([
      ['/source_ip', null],
      ['/target/name', 't'],
    ]);
  });

  it('takes every member of a wildcard path, whole values of any JSON type, with escaped pointers', () => {
    const policy = { subjects: [{ subject: '/actor/id', paths: ['/actor/fields/*', '/metadata/contact', '/metadata/a~1b'] }] };
    const event: AuditEvent = {
      action: 'a',
      actor: { id: 'u', fields: { email: 'a@example.com', 'x/y': 'z' } },
      metadata: { contact: { phone: ['+1 555'], n: 1 }, 'a/b': null, kept: true },
    };
    const split = splitPersonal(event, policy, randomFillSync);
    expect(Object.keys(split.commitments)).toEqual(['/actor/fields/email', '/actor/fields/x~1y', '/metadata/contact', '/metadata/a~1b']);
    expect(split.event).toEqual({ action: 'a', actor: { id: 'u', fields: {} }, metadata: { kept: true } });
    expect(split.values.find((v) => v.pointer === '/metadata/contact')?.value).toBe('{"n":1,"phone":["+1 555"]}');
    expect(restorePersonal(split.event, split.commitments, stored(split.values)).event).toEqual(event);
  });

  it('never reads or writes a prototype through a member named __proto__', () => {
    const metadata = JSON.parse('{"__proto__":{"polluted":1},"constructor":"x"}') as Record<string, unknown>;
    const event: AuditEvent = { action: 'a', metadata };
    const split = splitPersonal(event, { subjects: [{ subject: '/actor/id', paths: ['/metadata/*', '/metadata/toString'] }] }, randomFillSync);
    expect(Object.keys(split.commitments)).toEqual(['/metadata/__proto__', '/metadata/constructor']);
    const back = restorePersonal(split.event, split.commitments, stored(split.values)).event;
    expect(canonicalize(back)).toBe(canonicalize(event));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('restores values, marks an erased value and a mismatching one, and leaves the committed event as it was', () => {
    const event: AuditEvent = { action: 'a', actor: { id: 'u', name: 'Ann', href: 'https://example.com/ann' }, source_ip: '10.0.0.1' };
    const split = splitPersonal(event, DEFAULT_POLICY, randomFillSync);
    const values = stored(split.values);
    expect(restorePersonal(split.event, split.commitments, values)).toEqual({ event, erased: [], mismatched: [] });

    values.delete('/actor/name');
    values.set('/source_ip', { ...values.get('/source_ip')!, value: '"10.0.0.2"' });
    const restored = restorePersonal(split.event, split.commitments, values);
    expect(restored.erased).toEqual(['/actor/name']);
    expect(restored.mismatched).toEqual(['/source_ip']);
    expect(restored.event).toEqual({
      action: 'a',
      actor: { id: 'u', name: { erased: true, commitment: split.commitments['/actor/name'] }, href: 'https://example.com/ann' },
      source_ip: { erased: false, commitment: split.commitments['/source_ip'], mismatch: true },
    });
    expect(split.event).toEqual({ action: 'a', actor: { id: 'u' } });
    // The guards readers (the client SDK) use: each tells its own marker, and no value is one.
    const { actor, source_ip, actor: { href } = {} } = restored.event;
    expect([isErased(actor!.name), isMismatch(actor!.name), isErased(source_ip), isMismatch(source_ip), isErased(href), isMismatch(href)]).toEqual([true, false, false, true, false, false]);
    expect([isErased({ erased: true, commitment: 'c', extra: 1 }), isErased(null), isMismatch('[mismatch]')]).toEqual([false, false, false]);
  });

  it('round-trips any event: split then restore gives the event as sent', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 12 });
    const party = fc.record({ id: text, name: text, href: text, fields: fc.dictionary(text, text, { maxKeys: 3 }) }, { requiredKeys: ['id'] });
    const event = fc.record(
      { action: text, actor: party, target: fc.record({ id: text, name: text, type: fc.constantFrom('user', 'server') }), source_ip: text, fields: fc.dictionary(text, text) },
      { requiredKeys: ['action'] },
    );
    const policy = {
      subjects: [
        ...DEFAULT_POLICY.subjects,
        { subject: '/actor/id', paths: ['/actor/fields/*', '/fields/*'] },
      ],
    };
    fc.assert(
      fc.property(event, (e) => {
        const split = splitPersonal(e, policy, randomFillSync);
        expect(canonicalize(restorePersonal(split.event, split.commitments, stored(split.values)).event)).toBe(canonicalize(e));
        for (const pointer of Object.keys(split.commitments)) expect(formatPointer(parsePointer(pointer)!)).toBe(pointer);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a policy that makes a subject id, an index column or a malformed pointer personal', () => {
    expect(policyProblems(DEFAULT_POLICY)).toEqual([]);
    const problems = policyProblems({
      subjects: [
        { subject: '/actor/id', paths: ['/actor', '/actor/*', '/action', 'actor/name', '/a/*/b', '/group/id', '/metadata/x', '/metadata/x', ''] },
        { subject: '/metadata/user', paths: ['/metadata/*'] },
      ],
    });
    expect(problems.map((p) => p.field)).toEqual([
      'subjects.0.paths.0',
      'subjects.0.paths.1',
      'subjects.0.paths.2',
      'subjects.0.paths.3',
      'subjects.0.paths.4',
      'subjects.0.paths.5',
      'subjects.0.paths.7',
      'subjects.0.paths.8',
      'subjects.1.paths.0',
    ]);
    expect(problems[0]!.message).toMatch(/must not name \/actor\/id/);
    // A subject that is no pointer is refused once, not blamed again on every path as a clash.
    expect(policyProblems({ subjects: [{ subject: '', paths: ['/actor/name'] }] })).toEqual([
      { field: 'subjects.0.subject', message: 'must be an RFC 6901 JSON Pointer to a member of the event (beginning with /), without *' },
    ]);
  });

  it('refuses two paths that overlap, in one rule or across rules, naming the one overlapped', () => {
    const overlapping: [string, string][] = [
      ['/metadata', '/metadata/victim'],
      ['/metadata/victim', '/metadata'],
      ['/metadata/a', '/metadata/a'],
      ['/metadata/*', '/metadata/a'],
      ['/metadata/a/b', '/metadata/*'],
      ['/metadata/*', '/metadata'],
      ['/metadata/*', '/metadata/a/*'],
      ['/actor/fields/*', '/actor/fields/email'],
    ];
    for (const [first, second] of overlapping) {
      for (const policy of [
        { subjects: [{ subject: '/actor/id', paths: [first, second] }] },
        { subjects: [{ subject: '/actor/id', paths: [first] }, { subject: '/target/id', paths: [second] }] },
      ]) {
        const problems = policyProblems(policy);
        expect(problems, `${first} then ${second}`).toHaveLength(1);
        const firstField = 'subjects.0.paths.0';
        expect(problems[0]!.field).toBe(policy.subjects.length === 1 ? 'subjects.0.paths.1' : 'subjects.1.paths.0');
        expect(problems[0]!.message).toContain(`overlaps ${firstField} (${first})`);
      }
    }
    // Neighbours that share a prefix of characters but not of tokens do not overlap.
    const apart = { subjects: [{ subject: '/actor/id', paths: ['/metadata/a', '/metadata/ab', '/metadata/a~1b', '/metadata/c/*'] }, { subject: '/target/id', paths: ['/metadata/b/*'] }] };
    expect(policyProblems(apart)).toEqual([]);
  });

  it('refuses a pointer that can never match an event', () => {
    const never = ['/v', '/commitments', '/', '/nope', '/actor/name/x', '/source_ip/x', '/source_ip/*', '/is_failure/x', '/actor/nope', '/fields/a/b', '/fields/a/*', '/group/name/*'];
    const problems = policyProblems({ subjects: [{ subject: '/actor/id', paths: never }] });
    expect(problems.map((p) => p.field)).toEqual(never.map((_, p) => `subjects.0.paths.${p}`));
    for (const problem of problems) expect(problem.message).toMatch(/^can never match an event: /);
    expect(problems[0]!.message).toContain('it must begin with a member of the event (action, crud, group, actor,');
    expect(problems[4]!.message).toBe('can never match an event: /actor/name is always a string or a boolean');
    expect(policyProblems({ subjects: [{ subject: '/actor/name/id', paths: ['/source_ip'] }] })).toEqual([
      { field: 'subjects.0.subject', message: 'can never match an event: /actor/name is always a string or a boolean' },
    ]);
    // Every place an event can hold a value: a party's members and fields, the free JSON of metadata.
    const reachable = ['/actor/name', '/actor/href', '/actor/fields/*', '/target/name', '/target/fields/x', '/group/name', '/fields/*', '/metadata/a/b/c', '/description', '/external_id', '/component', '/version'];
    expect(policyProblems({ subjects: [{ subject: '/actor/id', paths: reachable }] })).toEqual([]);
  });

  it('refuses a path to a member that is never free text, and keeps whole maps and strings', () => {
    const problems = policyProblems({ subjects: [{ subject: '/actor/id', paths: ['/is_failure', '/source_ip', '/is_anonymous', '/crud', '/created'] }] });
    expect(problems).toEqual([
      { field: 'subjects.0.paths.0', message: 'must not name /is_failure: it is always true or false, never free text, so an erased value there would break the schema of its readers (Retraced\'s routes would show the text "[erased]" in it)' },
      { field: 'subjects.0.paths.2', message: expect.stringContaining('must not name /is_anonymous: it is always true or false') },
      // Index columns' sources are refused for that first.
      { field: 'subjects.0.paths.3', message: expect.stringContaining('must not name /crud: it stays clear') },
      { field: 'subjects.0.paths.4', message: expect.stringContaining('must not name /created: it stays clear') },
    ]);
    const maps = ['/fields', '/actor/fields', '/target/fields/*', '/metadata', '/description'];
    expect(policyProblems({ subjects: [{ subject: '/actor/id', paths: maps }] })).toEqual([]);
  });

  it('shows every marker as one text where a schema allows only strings', () => {
    const event = { action: 'a', actor: { id: 'u', name: { erased: true, commitment: 'c' } }, source_ip: { erased: false, commitment: 'd', mismatch: true } } as unknown as AuditEvent;
    const restored = { event, erased: ['/actor/name'], mismatched: ['/source_ip'] };
    expect(markersAsText(restored)).toEqual({ action: 'a', actor: { id: 'u', name: ERASED_TEXT }, source_ip: MISMATCH_TEXT });
    expect([ERASED_TEXT, MISMATCH_TEXT]).toEqual(['[erased]', '[mismatch]']);
    // The restored event is not changed.
    expect((event.actor as { name: unknown }).name).toEqual({ erased: true, commitment: 'c' });
  });

  it('stores a value with no subject when the subject id is not a non-empty string', () => {
    const policy = { subjects: [{ subject: '/metadata/user', paths: ['/metadata/email'] }] };
    for (const user of ['', 42, null, { id: 'u' }, ['u'], undefined]) {
      const split = splitPersonal({ action: 'a', metadata: { user, email: 'a@example.com' } }, policy, counting);
      expect(split.values.map((v) => v.subject), JSON.stringify(user)).toEqual([null]);
    }
    expect(splitPersonal({ action: 'a', metadata: { user: 'u', email: 'e' } }, policy, counting).values[0]!.subject).toBe('u');
  });

  it('names a subject by a keyed digest per project', () => {
    const key = Buffer.alloc(32, 1);
    const digest = subjectDigest(key, 'p1', 'user-42');
    expect(digest).toHaveLength(32);
    expect(digest.equals(subjectDigest(key, 'p2', 'user-42'))).toBe(false);
    expect(digest.equals(subjectDigest(Buffer.alloc(32, 2), 'p1', 'user-42'))).toBe(false);
  });
});

describe('docs/format.md "Personal data commitments"', () => {
  // Each `<!-- commitment-example: name -->` block of the document, recomputed here.
  const doc = readFileSync(new URL('../../docs/format.md', import.meta.url), 'utf8');
  const example = (name: string) => {
    const match = new RegExp(`<!-- commitment-example: ${name} -->\\n\`\`\`\\n([^]*?)\\n\`\`\``).exec(doc);
    if (!match) throw new Error(`docs/format.md has no commitment-example ${name}`);
    return match[1]!;
  };

  it('holds the worked example as the code computes it', () => {
    const sent = JSON.parse(example('sent')) as AuditEvent;
    const split = splitPersonal(sent, DEFAULT_POLICY, counting);
    const commitments = [...example('commitments').matchAll(/^(\/\S+)\s+=[^\n]*\n\s+= ([0-9a-f]{64})$/gm)].map((m) => [m[1], m[2]]);
    expect(commitments).toEqual(Object.entries(split.commitments));

    const [body, hashLine] = example('body').split('\n');
    // The ledger fields as the prose gives them; every id a UUIDv7 whose time is received_at, as the ledger writes them.
    const fields = /project `([^`]+)`, environment\s+`([^`]+)`, seq 1, id `([^`]+)`,\s+received at `([^`]+)`/.exec(doc);
    expect(fields).not.toBeNull();
    const [, project, environment, id, received_at] = fields as unknown as [string, string, string, string, string];
    for (const uuid of [project, environment, id]) expect(uuidv7Time(uuid), uuid).toBe(Date.parse(received_at));
    const encoded = encodeEvent(split.event, { project, environment, seq: 1, id, received_at, prev: GENESIS_PREV }, split.commitments);
    expect(body).toBe(encoded.canonical.toString('utf8'));
    expect(hashLine).toBe(`SHA-256(0x00 || body) = ${encoded.hash.toString('hex')}`);
    expect(example('erased')).toBe(canonicalize(restorePersonal(split.event, split.commitments, new Map()).event));
  });
});
