import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../ledger/keys.js';

/**
 * Retraced's viewertoken lets the vendor hand one of its customers (a group) a short-lived token
 * for the embedded log viewer. Here it is a signed, expiring, read-only claim stored nowhere:
 * `alv_<base64url JSON claims>.<base64url HMAC-SHA256 of "alv_<claims>">`. The claims bind it to
 * the issuing API token (so that checking that token at use revokes it with it), to the chain, and
 * to the group (and target) whose events it may read. Read routes accept them (see Credentials and viewerFilter).
 */
export const VIEWER_TOKEN_SECONDS = 300;
const VIEWER_TOKEN = /^alv_([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/;

export interface ViewerClaims {
  v: 1;
  /** The API token that issued it. */
  token_id: string;
  project_id: string;
  environment_id: string;
  group_id: string;
  actor_id: string;
  target_id?: string | undefined;
  /** The action Retraced records when the viewer is opened, for the viewer to record. */
  view_log_action?: string | undefined;
  /** Expiry, in seconds since the epoch. */
  exp: number;
}

/** The viewer-token key, derived from the signing key (HKDF) so that there is no other secret to keep. */
export function viewerTokenKey(signingKey: SigningKey): Buffer {
  return Buffer.from(hkdfSync('sha256', signingKey.privateKey, new Uint8Array(0), 'auditledger viewer token v1', 32));
}

const viewerMac = (key: Buffer, payload: string) => createHmac('sha256', key).update(`alv_${payload}`).digest();

export function issueViewerToken(key: Buffer, claims: ViewerClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `alv_${payload}.${viewerMac(key, payload).toString('base64url')}`;
}

/** The claims of a genuine, unexpired viewer token; undefined for anything else. */
export function verifyViewerToken(key: Buffer, token: string, now = Date.now()): ViewerClaims | undefined {
  const match = VIEWER_TOKEN.exec(token);
  if (!match) return undefined;
  const payload = match[1]!;
  if (!timingSafeEqual(viewerMac(key, payload), Buffer.from(match[2]!, 'base64url'))) return undefined;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ViewerClaims;
  return claims.v === 1 && claims.exp * 1000 > now ? claims : undefined;
}

