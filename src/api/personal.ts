import type pg from 'pg';
import { subjectDigest } from '../ledger/personal.js';
import { setRecent } from '../recent-map.js';
import type { ChainRef, PersonalSplit } from '../store/append.js';
import { chainPolicy } from '../store/personal.js';

const MAX_CACHED_CHAINS = 10_000;

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
    const split: PersonalSplit = { policy, subjectDigest: (subject) => subjectDigest(key, chain.project, subject) };
    setRecent(this.cache, chain.environment, { split, until: now + this.cacheMs }, MAX_CACHED_CHAINS);
    return split;
  }

  /** Forgets every cached policy, after a change (a project's policy reaches all its chains). */
  forget(): void {
    this.cache.clear();
  }
}
