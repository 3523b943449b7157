import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { findCredential, recordTokenUse, type Scope, type TokenCredential } from '../store/tokens.js';
import { verifyViewerToken } from './viewer-token.js';

/**
 * Token format. An API token is `alt_<id>_<secret>`: the id (a UUID without dashes) finds the
 * stored digest, which is then compared in constant time, so lookups never depend on the
 * secret. Secrets are 256 random bits. Admin tokens are `ala_<secret>`.
 */
const MAX_CACHED_TOKENS = 10_000;
const API_TOKEN = /^alt_([0-9a-f]{32})_[A-Za-z0-9_-]{43}$/;

export function digest(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

export function newApiToken(id: string): string {
  return `alt_${id.replaceAll('-', '')}_${randomBytes(32).toString('base64url')}`;
}

export function newAdminToken(): string {
  return `ala_${randomBytes(32).toString('base64url')}`;
}

function apiTokenId(token: string): string | undefined {
  const hex = API_TOKEN.exec(token)?.[1];
  return hex && `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export type Principal =
  | { kind: 'admin' }
  | { kind: 'token'; tokenId: string; projectId: string; environmentId: string; scopes: readonly Scope[] }
  /** A Retraced viewer token: reads the events of one group (and target) of one chain. */
  | { kind: 'viewer'; tokenId: string; projectId: string; environmentId: string; groupId: string; targetId?: string | undefined };

/**
 * What the app needs of credentials: the principal a presented token stands for, and a way to
 * drop a token it may have cached (after a revocation). The server's tokens (Credentials) and
 * library mode's in-process bearers (src/library.ts) both are one.
 */
export interface Authenticator {
  /** The principal `token` stands for, or undefined when it is unknown, expired or revoked. */
  authenticate(token: string): Promise<Principal | undefined>;
  /** Forgets a cached token, so a revocation takes effect at once in this process. */
  forget(tokenId: string): void;
}

export interface CredentialOptions {
  /** How long a looked-up token is trusted before it is read again. */
  cacheMs: number;
  /** How often last_used_at is written for the tokens used since the last write. */
  usageFlushMs: number;
  /** Key of viewer tokens (viewer-token.ts); without it they are refused. */
  viewerKey?: Buffer | undefined;
}

/**
 * Resolves presented tokens to principals. Token rows are cached briefly so an append does not
 * cost a lookup; uses are collected in memory and written in one batch, never per request.
 */
export class Credentials implements Authenticator {
  private readonly cache = new Map<string, { credential: TokenCredential | undefined; until: number }>();
  private uses = new Map<string, Date>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    private readonly db: pg.Pool,
    private readonly adminDigests: readonly Buffer[],
    private readonly options: CredentialOptions,
  ) {
    this.flushTimer = setInterval(() => void this.flushUsage().catch(() => undefined), options.usageFlushMs);
    this.flushTimer.unref();
  }

  /** The principal a token stands for, or undefined when it is unknown, expired or revoked. */
  async authenticate(token: string, now = new Date()): Promise<Principal | undefined> {
    if (token.startsWith('alv_')) return this.authenticateViewer(token, now);
    const presented = digest(token);
    const id = apiTokenId(token);
    if (!id) {
      // Compare against every admin digest so timing says nothing about which one matched.
      let match = false;
      for (const admin of this.adminDigests) match = timingSafeEqual(admin, presented) || match;
      return match ? { kind: 'admin' } : undefined;
    }
    const credential = await this.lookup(id, now.getTime());
    if (!credential || !timingSafeEqual(credential.digest, presented)) return undefined;
    if (credential.revoked_at || (credential.expires_at && credential.expires_at <= now)) return undefined;
    this.uses.set(credential.id, now);
    return {
      kind: 'token',
      tokenId: credential.id,
      projectId: credential.project_id,
      environmentId: credential.environment_id,
      scopes: credential.scopes,
    };
  }

  /**
   * A viewer token holds while the API token that issued it does: unrevoked, unexpired, able to
   * read, and of the same chain.
   */
  private async authenticateViewer(token: string, now: Date): Promise<Principal | undefined> {
    const claims = this.options.viewerKey && verifyViewerToken(this.options.viewerKey, token, now.getTime());
    if (!claims) return undefined;
    const issuer = await this.lookup(claims.token_id, now.getTime());
    if (!issuer || issuer.revoked_at || (issuer.expires_at && issuer.expires_at <= now)) return undefined;
    if (issuer.environment_id !== claims.environment_id || !issuer.scopes.includes('events:read')) return undefined;
    return {
      kind: 'viewer',
      tokenId: issuer.id,
      projectId: issuer.project_id,
      environmentId: issuer.environment_id,
      groupId: claims.group_id,
      targetId: claims.target_id,
    };
  }

  /** Forgets a cached token, so a revocation takes effect at once in this process. */
  forget(tokenId: string): void {
    this.cache.delete(tokenId);
  }

  async flushUsage(): Promise<void> {
    const uses = this.uses;
    this.uses = new Map();
    await recordTokenUse(this.db, uses);
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flushUsage();
  }

  private async lookup(id: string, now: number): Promise<TokenCredential | undefined> {
    const cached = this.cache.get(id);
    if (cached && cached.until > now) return cached.credential;
    const credential = await findCredential(this.db, id);
    // Unknown ids are cached too; a flood of made-up ones must not grow memory without bound.
    if (this.cache.size >= MAX_CACHED_TOKENS) this.cache.clear();
    this.cache.set(id, { credential, until: now + this.options.cacheMs });
    return credential;
  }
}
