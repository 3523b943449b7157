import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type pg from 'pg';
import { digest, newAdminToken } from './api/credentials.js';
import { withTransaction } from './store/database.js';
import { adminDigests, insertAdminDigest, lockAdminTokens } from './store/tokens.js';
import { makeDirectory } from './make-directory.js';

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
  const generated = await withTransaction(db, async (client) => {
    // Two processes starting together must not both generate one.
    await lockAdminTokens(client);
    const existing = await adminDigests(client);
    if (existing.length > 0) return { digests: existing };
    const token = newAdminToken();
    const file = path.join(dataDir, 'admin-token');
    await makeDirectory(dataDir);
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    await insertAdminDigest(client, digest(token));
    return { digests: [digest(token)], file };
  });
  if (generated.file) {
    log.info({ file: generated.file }, 'generated the admin token; only its digest is stored');
    process.stdout.write(`admin token written to ${generated.file} (keep it safe; it is not stored anywhere else)\n`);
  }
  return generated.digests;
}
