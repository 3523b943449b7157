import type pg from 'pg';
import type { AuditEvent, EventBody } from '../ledger/event.js';
import { canonicalize, sortCodeUnits } from '../ledger/jcs.js';
import { DEFAULT_POLICY, restorePersonal, SALT_SIZE, type PersonalPolicy, type PersonalValue } from '../ledger/personal.js';
import { policyChangedEvent, type PolicyFacts } from '../ledger/system-events.js';
import type { Failure, StoredEvent } from '../ledger/verify-events.js';
import { appendToEach, inChainsTransaction, type ChainReceipt } from './append.js';
import { queryEvents } from './events.js';

/**
 * Personal data (docs/format.md "Personal data commitments"): the policies that say which event
 * paths are personal, and the erasable store of the values taken out of event bodies.
 */

/** A policy as stored: for a project (environment null) or one of its environments. */
export interface PolicyRow {
  policy: PersonalPolicy;
  changed_at: Date;
}

/** A chain's policy, and the seq of its latest change (chain_heads.policy_seq), read together. */
export interface ChainPolicy extends PolicyFacts {
  policySeq: number;
}

/** The policy a chain's appends follow: its environment's, else its project's, else DEFAULT_POLICY. */
export async function chainPolicy(db: pg.Pool | pg.PoolClient, environment: string): Promise<ChainPolicy> {
  // Named: appends read it for each chain whose cached policy expired, so on many chains often.
  const { rows } = await db.query<{ policy: PersonalPolicy | null; environment_id: string | null; policy_seq: string | null }>({
    name: 'chain-policy',
    text: `SELECT p.policy, p.environment_id, h.policy_seq FROM environments e
       LEFT JOIN chain_heads h ON h.environment_id = e.id
       LEFT JOIN personal_data_policies p ON p.project_id = e.project_id AND (p.environment_id = e.id OR p.environment_id IS NULL)
      WHERE e.id = $1 ORDER BY p.environment_id NULLS LAST LIMIT 1`,
    values: [environment],
  });
  const row = rows[0];
  const policySeq = Number(row?.policy_seq ?? 0);
  if (!row?.policy) return { policy: DEFAULT_POLICY, source: 'default', policySeq };
  return { policy: row.policy, source: row.environment_id ? 'environment' : 'project', policySeq };
}

/** The stored policy row of a project (`environment` null) or an environment; undefined when none. */
export async function getPolicy(db: pg.Pool | pg.PoolClient, project: string, environment: string | null): Promise<PolicyRow | undefined> {
  const { rows } = await db.query<PolicyRow>(
    'SELECT policy, changed_at FROM personal_data_policies WHERE project_id = $1 AND environment_id IS NOT DISTINCT FROM $2',
    [project, environment],
  );
  return rows[0];
}

/** Stores the policy of a project (`environment` null) or an environment, replacing one stored before. */
export async function putPolicy(db: pg.Pool | pg.PoolClient, project: string, environment: string | null, policy: PersonalPolicy): Promise<PolicyRow> {
  const { rows } = await db.query<PolicyRow>(
    `INSERT INTO personal_data_policies (project_id, environment_id, policy) VALUES ($1, $2, $3)
       ON CONFLICT (project_id, environment_id) DO UPDATE SET policy = excluded.policy, changed_at = now()
     RETURNING policy, changed_at`,
    [project, environment, JSON.stringify(policy)],
  );
  return rows[0]!;
}

/** Removes the policy of a project or an environment (its chains then follow the next one up); returns whether one was stored. */
export async function deletePolicy(db: pg.Pool | pg.PoolClient, project: string, environment: string | null): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM personal_data_policies WHERE project_id = $1 AND environment_id IS NOT DISTINCT FROM $2', [project, environment]);
  return (rowCount ?? 0) > 0;
}

/**
 * The chains that follow the policy of a project (`environment` null: its environments without
 * a policy of their own) or of one of its environments (that one, if it is the project's):
 * those whose policy a change of it changes.
 */
export async function chainsFollowing(db: pg.Pool | pg.PoolClient, project: string, environment: string | null): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT e.id FROM environments e
      WHERE e.project_id = $1 AND ($2::uuid IS NULL AND NOT EXISTS (SELECT FROM personal_data_policies p WHERE p.environment_id = e.id) OR e.id = $2)
      ORDER BY e.id`,
    [project, environment],
  );
  return rows.map((r) => r.id);
}

/** A change of the policy of a project (`environment` null) or of one of its environments. */
export interface PolicyChange {
  project: string;
  environment: string | null;
  /** The policy to set; null removes the one set. */
  policy: PersonalPolicy | null;
  /** The server clock of the appends, ms since the epoch. */
  now: () => number;
}

/**
 * Stores a policy change and appends its record (system-events.ts policyChangedEvent: the policy
 * now in force there and where it comes from) to each chain whose policy it
 * changes (chainsFollowing), in one transaction holding those chains' head locks: when an append
 * fails (a day that takes no events), the policy is not changed and no chain records it, and
 * appends after the commit follow the new policy. Setting the policy already set, byte for byte
 * in RFC 8785 form, changes nothing and answers no events. Undefined when removing a policy that
 * is not set.
 */
export async function changePolicy(db: pg.Pool, change: PolicyChange): Promise<{ events: ChainReceipt[] } | undefined> {
  const { project, environment, policy } = change;
  const client = await db.connect();
  try {
    const chains = await chainsFollowing(client, project, environment);
    return await inChainsTransaction(
      client,
      chains.map((id) => ({ project, environment: id })),
      change.now,
      async (append) => {
        const stored = await getPolicy(client, project, environment);
        if (policy === null) {
          if (!(await deletePolicy(client, project, environment))) return undefined;
        } else if (stored && canonicalize(stored.policy) === canonicalize(policy)) {
          return { events: [] };
        } else await putPolicy(client, project, environment, policy);
        const events = await appendToEach(append, project, chains, async (id) => policyChangedEvent(await chainPolicy(client, id)));
        // Each chain's head is locked and is its change event: appends split before it are fenced off.
        await client.query('UPDATE chain_heads SET policy_seq = seq WHERE environment_id = ANY($1)', [chains]);
        return { events };
      },
    );
  } finally {
    client.release();
  }
}

/**
 * One personal_values row: the values of one data subject in one event. One row per subject
 * rather than per value: a row and its two index entries cost PostgreSQL about as much per
 * value as the event's own row, whatever the value's size.
 */
export interface PersonalRow {
  /** The keyed subject digest (personal.ts subjectDigest); null for values whose subject the event does not name. */
  subjectDigest: Buffer | null;
  /** RFC 8785 canonical JSON of an object mapping each value's RFC 6901 pointer to the value. */
  values: string;
  /** Each value's SALT_SIZE salt, end to end, in the member order of `values` (RFC 8785: by UTF-16 code units of the pointers). */
  salts: Buffer;
}

// `values` grouped by subject. Most events name one subject: no Map then.
function bySubject(values: readonly PersonalValue[]): (readonly PersonalValue[])[] {
  if (values.length === 0) return [];
  const first = values[0]!.subject;
  if (values.every((value) => value.subject === first)) return [values];
  const groups = new Map<string | null, PersonalValue[]>();
  for (const value of values) {
    const group = groups.get(value.subject);
    if (group) group.push(value);
    else groups.set(value.subject, [value]);
  }
  return [...groups.values()];
}

/**
 * An event's personal values (personal.ts splitPersonal) as personal_values rows, one per
 * subject, `digest` naming each subject. The values' canonical JSON is used as it is, so the
 * row holds exactly the bytes each commitment covers. Throws JcsError for a pointer that is not
 * well-formed Unicode.
 */
export function personalRows(values: readonly PersonalValue[], digest: (subject: string) => Buffer): PersonalRow[] {
  const rows: PersonalRow[] = [];
  for (const group of bySubject(values)) {
    const { subject } = group[0]!;
    // RFC 8785 section 3.2.3: members sorted by the UTF-16 code units of their pointers (sorting
    // the few pointers, not the values with a comparison: V8's sort allocates work arrays).
    const pointers = sortCodeUnits(group.map((value) => value.pointer));
    const salts = Buffer.allocUnsafe(group.length * SALT_SIZE);
    let text = '{';
    for (let i = 0; i < pointers.length; i++) {
      const pointer = pointers[i]!;
      const { value, salt } = group.find((v) => v.pointer === pointer)!;
      text += `${i > 0 ? ',' : ''}${canonicalize(pointer)}:${value}`;
      salts.set(salt, i * SALT_SIZE);
    }
    rows.push({ subjectDigest: subject === null ? null : digest(subject), values: `${text}}`, salts });
  }
  return rows;
}

/**
 * The values of a personal_values row by pointer, each as canonical JSON with its salt. A row
 * whose `values` does not parse as an object gives none (its values read as erased); a salt
 * missing from `salts` is given short (it reads as a mismatch).
 */
export function readPersonalRow(values: string, salts: Buffer): [string, { value: string; salt: Buffer }][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(values);
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return [];
  const object = parsed as Record<string, unknown>;
  // The order personalRows wrote the salts in.
  return sortCodeUnits(Object.keys(object)).map((pointer, i) => [pointer, { value: canonicalOrJson(object[pointer]), salt: salts.subarray(i * SALT_SIZE, (i + 1) * SALT_SIZE) }]);
}

// A value written by personalRows is its own canonical form. One with no canonical form (a lone
// surrogate written into the row by hand) cannot match its commitment: it reads as a mismatch.
function canonicalOrJson(value: unknown): string {
  try {
    return canonicalize(value);
  } catch {
    return JSON.stringify(value);
  }
}

/** An event as readers show it: the stored row, and its event with the personal values put back. */
export interface ShownEvent {
  row: StoredEvent;
  /** The event with its values restored (erased ones as markers); null when the stored bytes do not parse. */
  event: AuditEvent | null;
  /** Pointers whose value was erased. */
  erased: string[];
  /** Pointers whose stored value does not match its commitment (a verify=true finding). */
  mismatched: string[];
}

/**
 * The events of `rows` (all of one chain) with their personal values put back, in one query for
 * the rows whose bodies hold commitments (none when no body does). Every path that returns
 * events goes through here, so none can show a value unchecked or omit an erased one silently.
 */
export async function showEvents(db: pg.Pool | pg.PoolClient, environment: string, rows: readonly StoredEvent[]): Promise<ShownEvent[]> {
  const bodies = rows.map((row): Partial<EventBody> | null => {
    try {
      const body: unknown = JSON.parse(row.canonical.toString('utf8'));
      return typeof body === 'object' && body !== null ? body : null;
    } catch {
      // Corrupted bytes are shown as they are; verify=true says what is wrong with them.
      return null;
    }
  });
  const committed = rows.filter((_, i) => isCommitments(bodies[i]?.commitments)).map((row) => row.seq);
  const stored = new Map<number, Map<string, { value: string; salt: Buffer }>>();
  if (committed.length > 0) {
    const { rows: personal } = await db.query<{ seq: number; pointer_values: string; salts: Buffer }>(
      'SELECT seq, pointer_values, salts FROM personal_values WHERE environment_id = $1 AND seq = ANY($2::bigint[])',
      [environment, committed],
    );
    for (const row of personal) {
      let ofEvent = stored.get(row.seq);
      if (!ofEvent) stored.set(row.seq, (ofEvent = new Map()));
      for (const [pointer, value] of readPersonalRow(row.pointer_values, row.salts)) ofEvent.set(pointer, value);
    }
  }
  return rows.map((row, i) => {
    const body = bodies[i];
    const event = body?.event ?? null;
    if (!event || !isCommitments(body?.commitments)) return { row, event, erased: [], mismatched: [] };
    return { row, ...restorePersonal(event, body.commitments, stored.get(row.seq) ?? new Map()) };
  });
}

// A body's commitments as the format writes them; anything else in its place restores nothing
// (verification reports the body).
function isCommitments(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((c) => typeof c === 'string');
}

/** The findings of shown events' personal values: each stored value that does not match its commitment. */
export function personalFailures(shown: readonly ShownEvent[]): Failure[] {
  return shown.flatMap(({ row, mismatched }) =>
    mismatched.map((pointer) => ({ seq: row.seq, reason: `the personal value at ${pointer} does not match its commitment` })),
  );
}

/**
 * personalFailures of every event of a chain, read in pages of `pageSize` events in seq order
 * (each page restored as readers restore it, showEvents). An erased value is no failure: erasing
 * is what the store is for, and the chain's erasure events record the erasures requested.
 */
export async function chainPersonalFailures(db: pg.Pool, environment: string, pageSize = 1000): Promise<Failure[]> {
  const failures: Failure[] = [];
  let after: number | undefined;
  for (;;) {
    const rows = await queryEvents(db, environment, { order: 'asc', limit: pageSize, after_seq: after });
    if (rows.length === 0) return failures;
    failures.push(...personalFailures(await showEvents(db, environment, rows)));
    after = rows.at(-1)!.seq;
  }
}
