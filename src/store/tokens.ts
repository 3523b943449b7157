import type pg from 'pg';
import type { Page } from './tenants.js';

/** API tokens (stored as SHA-256 digests only) and admin token digests. */

export const SCOPES = ['events:write', 'events:read', 'verify', 'erase'] as const;
export type Scope = (typeof SCOPES)[number];
/** What a new token may do unless told: everything but erasing personal data, which must be asked for. */
export const DEFAULT_SCOPES: readonly Scope[] = ['events:write', 'events:read', 'verify'];

export interface TokenInfo {
  id: string;
  name: string;
  scopes: Scope[];
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

/** What authentication needs: the digest to compare and the tenant the token is scoped to. */
export interface TokenCredential {
  id: string;
  digest: Buffer;
  scopes: Scope[];
  expires_at: Date | null;
  revoked_at: Date | null;
  project_id: string;
  environment_id: string;
}

const TOKEN_COLUMNS = 'id, name, scopes, expires_at, revoked_at, last_used_at, created_at';

export interface NewToken {
  id: string;
  digest: Buffer;
  name: string;
  scopes: Scope[];
  expiresAt: Date | null;
}

/** Creates a token for an environment of the project; undefined when there is no such pair. */
export async function insertToken(
  db: pg.Pool,
  projectId: string,
  environmentId: string,
  token: NewToken,
): Promise<TokenInfo | undefined> {
  const { rows } = await db.query<TokenInfo>(
    `INSERT INTO api_tokens (id, environment_id, name, digest, scopes, expires_at)
     SELECT $1, id, $4, $5, $6, $7 FROM environments WHERE project_id = $2 AND id = $3
     RETURNING ${TOKEN_COLUMNS}`,
    [token.id, projectId, environmentId, token.name, token.digest, token.scopes, token.expiresAt],
  );
  return rows[0];
}

export async function listTokens(
  db: pg.Pool,
  projectId: string,
  environmentId: string,
  page: Page,
): Promise<TokenInfo[] | undefined> {
  const env = await db.query('SELECT FROM environments WHERE project_id = $1 AND id = $2', [projectId, environmentId]);
  if (!env.rowCount) return undefined;
  const { rows } = await db.query<TokenInfo>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens
      WHERE environment_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [environmentId, page.after ?? null, page.limit],
  );
  return rows;
}

/** Revokes a token (idempotent: the first revocation time is kept). False when unknown. */
export async function revokeToken(db: pg.Pool, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1',
    [id],
  );
  return rowCount === 1;
}

export async function findCredential(db: pg.Pool, id: string): Promise<TokenCredential | undefined> {
  // Named, as chainPolicy, so that each connection parses and plans it once: a token leaves the
  // cache every AUDITLEDGER_TOKEN_CACHE_SECONDS, so 1,000 chains look up 200 a second, and parsing
  // and planning both lookups each time was about a quarter of PostgreSQL's CPU per event (bench (c3)).
  const { rows } = await db.query<TokenCredential>({
    name: 'find-credential',
    text: `SELECT t.id, t.digest, t.scopes, t.expires_at, t.revoked_at, e.project_id, t.environment_id
       FROM api_tokens t JOIN environments e ON e.id = t.environment_id WHERE t.id = $1`,
    values: [id],
  });
  return rows[0];
}

/** Writes the latest use of many tokens in one statement. */
export async function recordTokenUse(db: pg.Pool, uses: ReadonlyMap<string, Date>): Promise<void> {
  if (uses.size === 0) return;
  await db.query(
    `UPDATE api_tokens t SET last_used_at = greatest(t.last_used_at, u.at)
       FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE t.id = u.id`,
    [[...uses.keys()], [...uses.values()]],
  );
}

/** Holds other processes' first-start admin token generation until this transaction ends. */
export async function lockAdminTokens(client: pg.PoolClient): Promise<void> {
  await client.query('LOCK TABLE admin_tokens IN EXCLUSIVE MODE');
}

export async function adminDigests(db: pg.Pool | pg.PoolClient): Promise<Buffer[]> {
  const { rows } = await db.query<{ digest: Buffer }>('SELECT digest FROM admin_tokens');
  return rows.map((r) => r.digest);
}

export async function insertAdminDigest(db: pg.Pool | pg.PoolClient, digest: Buffer): Promise<void> {
  await db.query('INSERT INTO admin_tokens (digest) VALUES ($1) ON CONFLICT DO NOTHING', [digest]);
}
