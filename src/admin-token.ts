import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type pg from 'pg';
import { digest, newAdminToken } from './api/credentials.js';
import { adminDigests, insertAdminDigest } from './store/tokens.js';

/**
 * The admin token's digests. A configured token wins. Otherwise the first start generates one,
 * stores only its digest, and writes the token once to DATA_DIR/admin-token (mode 0600).
 */
export async function ensureAdminToken(
  configured: string | undefined,
  dataDir: string,
  db: pg.Pool,
  log: Logger,
): Promise<Buffer[]> {
  if (configured) return [digest(configured)];
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    // Two processes starting together must not both generate one.
    await client.query('LOCK TABLE admin_tokens IN EXCLUSIVE MODE');
    const existing = await adminDigests(client);
    if (existing.length > 0) {
      await client.query('COMMIT');
      return existing;
    }
    const token = newAdminToken();
    const file = path.join(dataDir, 'admin-token');
    await mkdir(dataDir, { recursive: true });
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    await insertAdminDigest(client, digest(token));
    await client.query('COMMIT');
    log.info({ file }, 'generated the admin token; only its digest is stored');
    process.stdout.write(`admin token written to ${file} (keep it safe; it is not stored anywhere else)\n`);
    return [digest(token)];
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}
