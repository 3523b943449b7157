import type pg from 'pg';
import { subjectDigest } from '../ledger/personal.js';
import { setRecent } from '../recent-map.js';
import type { ChainRef, PersonalSplit } from '../store/append.js';
import { chainPolicy } from '../store/personal.js';

const MAX_CACHED_CHAINS = 10_000;
// Per chain: small, since up to MAX_CACHED_CHAINS chains each keep theirs.
const MAX_CACHED_SUBJECTS = 16;

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
    const { policy } = await chainPolicy(this.db, chain.environment);
    const key = this.subjectKey;
    // A chain's events name the same few subjects over and over: one HMAC each, not one per value.
    const digests = new Map<string, Buffer>();
    const split: PersonalSplit = {
      policy,
      subjectDigest(subject) {
        let digest = digests.get(subject);
        if (!digest) setRecent(digests, subject, (digest = subjectDigest(key, chain.project, subject)), MAX_CACHED_SUBJECTS);
        return digest;
      },
    };
    setRecent(this.cache, chain.environment, { split, until: now + this.cacheMs }, MAX_CACHED_CHAINS);
    return split;
  }

  /** Forgets every cached policy, after a change (a project's policy reaches all its chains). */
  forget(): void {
    this.cache.clear();
  }
}
