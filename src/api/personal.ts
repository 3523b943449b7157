import type pg from 'pg';
import type { AuditEvent } from '../ledger/event.js';
import { subjectDigest } from '../ledger/personal.js';
import { setRecent } from '../recent-map.js';
import { appendItem, type AppendOutcome, type ChainRef, type PersonalSplit } from '../store/append.js';
import { PolicyChangedError } from '../store/errors.js';
import type { GroupCommit } from '../store/group-commit.js';
import { chainPolicy } from '../store/personal.js';
import { ApiError } from './errors.js';

const MAX_CACHED_CHAINS = 10_000;
// Per chain: small, since up to MAX_CACHED_CHAINS chains each keep theirs.
const MAX_CACHED_SUBJECTS = 16;
// Splits of one request: a policy changed that often while it waited is worth a retry by the client.
const MAX_SPLITS = 3;

/**
 * Each chain's personal data policy, as appends apply it (appendItem), cached briefly so that an
 * append does not cost a lookup. A change made through this process is seen at once (forget);
 * other processes see it within `cacheMs`, like a token revocation.
 */
export class PersonalPolicies {
  private readonly cache = new Map<string, { split: PersonalSplit; until: number }>();

  constructor(
    private readonly db: pg.Pool,
    private readonly subjectKey: Buffer,
    private readonly cacheMs: number,
  ) {}

  /** How appends to `chain` split personal data: its policy and its subjects' keyed digests. */
  async split(chain: ChainRef, now = Date.now()): Promise<PersonalSplit> {
    const cached = this.cache.get(chain.environment);
    if (cached && cached.until > now) return cached.split;
    const { policy, policySeq } = await chainPolicy(this.db, chain.environment);
    const key = this.subjectKey;
    // A chain's events name the same few subjects over and over: one HMAC each, not one per value.
    const digests = new Map<string, Buffer>();
    const split: PersonalSplit = {
      policy,
      policySeq,
      subjectDigest(subject) {
        let digest = digests.get(subject);
        if (!digest) setRecent(digests, subject, (digest = subjectDigest(key, chain.project, subject)), MAX_CACHED_SUBJECTS);
        return digest;
      },
    };
    setRecent(this.cache, chain.environment, { split, until: now + this.cacheMs }, MAX_CACHED_CHAINS);
    return split;
  }

  /**
   * Appends one request's events, each with its idempotency key, to `chain` through `groupCommit`,
   * split under the chain's policy. When another process changed the policy since this one cached
   * it, the append is refused before anything is written (PolicyChangedError) and the events are
   * split again under the chain's new policy: no event follows a change recorded before it with
   * the old one. Throws ApiError 503 when the policy changed MAX_SPLITS times meanwhile.
   */
  async append(groupCommit: GroupCommit, chain: ChainRef, events: readonly { event: AuditEvent; key?: string | undefined }[]): Promise<AppendOutcome> {
    for (let split = 1; ; split++) {
      const personal = await this.split(chain);
      try {
        return await groupCommit.append(chain, events.map(({ event, key }) => appendItem(event, key, personal)));
      } catch (error) {
        if (!(error instanceof PolicyChangedError)) throw error;
        this.cache.delete(chain.environment);
        if (split === MAX_SPLITS) throw new ApiError(503, 'policy_changed', "the chain's personal data policy kept changing while the events were appended; retry");
      }
    }
  }

  /** Forgets every cached policy, after a change (a project's policy reaches all its chains). */
  forget(): void {
    this.cache.clear();
  }
}
