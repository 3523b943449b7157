import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config.js';
import { encodeSigningKey, generateSigningKey, parseSigningKey, type SigningKey, type VerifierKey } from './ledger/keys.js';
import { makeDirectory } from './make-directory.js';

export interface Keyring {
  /** Signs new checkpoints and bundles. Never stored in the database or logged. */
  current: SigningKey;
  /** Public keys of earlier signing keys, so their signatures keep verifying. */
  retired: VerifierKey[];
  /** Checkpoint origin prefix. */
  origin: string;
}

/** A new key's name: the host plus a random suffix, valid as a note key name. */
function defaultKeyName(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '') || 'host';
  return `auditledger-${host}-${randomBytes(3).toString('hex')}`;
}

/** The key in `file`; a ConfigError naming `variable`, the setting that chose the file, otherwise. */
async function readKey(file: string, variable: string): Promise<SigningKey> {
  try {
    return parseSigningKey(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ConfigError([`${variable}: cannot use the signing key in ${file}: ${(error as Error).message}`]);
  }
}

/**
 * The signing key: AUDITLEDGER_SIGNING_KEY_FILE, or DATA_DIR/signing-key, generated (mode 0600) on
 * first start with a warning that production keys belong in a secret store. Throws ConfigError
 * when the key file cannot be read or holds no valid signing key.
 */
export async function loadKeyring(config: Config, log: Logger): Promise<Keyring> {
  const retired = config.AUDITLEDGER_RETIRED_KEYS;
  let current: SigningKey;
  if (config.AUDITLEDGER_SIGNING_KEY_FILE) {
    current = await readKey(config.AUDITLEDGER_SIGNING_KEY_FILE, 'AUDITLEDGER_SIGNING_KEY_FILE');
  } else {
    const file = path.join(config.AUDITLEDGER_DATA_DIR, 'signing-key');
    await makeDirectory(config.AUDITLEDGER_DATA_DIR);
    try {
      await writeFile(file, `${encodeSigningKey(generateSigningKey(defaultKeyName()))}\n`, { mode: 0o600, flag: 'wx' });
      log.warn({ file }, 'generated a signing key in the data dir; production keys belong in a secret store (AUDITLEDGER_SIGNING_KEY_FILE)');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    current = await readKey(file, 'AUDITLEDGER_DATA_DIR');
  }
  return { current, retired, origin: config.AUDITLEDGER_ORIGIN ?? current.name };
}

/** Every key whose signatures verify: the current one first, then the retired ones. */
export function verifiers(keyring: Keyring): VerifierKey[] {
  return [keyring.current, ...keyring.retired];
}
