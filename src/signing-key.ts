import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config.js';
import { encodeSigningKey, generateSigningKey, KeyError, parseSigningKey, parseVerifierKey, signingKeyFromSeed, type SigningKey, type VerifierKey } from './ledger/keys.js';
import { makeDirectory } from './make-directory.js';

/** The name a PEM signing key gets (a PEM carries none): the key id hashes it, so it must not vary. */
export const PEM_KEY_NAME = 'auditledger';

export interface Keyring {
  /** Signs new checkpoints and bundles. Never stored in the database or logged. */
  current: SigningKey;
  /** Public keys of earlier signing keys, so their signatures keep verifying. */
  retired: VerifierKey[];
  /** Checkpoint origin prefix. */
  origin: string;
  /**
   * 32 bytes keying the digests that name data subjects (personal.ts subjectDigest). Unlike the
   * signing key it never rotates: the erasable store finds a subject's values by those digests.
   */
  subjectKey: Buffer;
}

const SUBJECT_KEY = /^[0-9a-f]{64}$/;

/** The subject key as its file holds it: 64 lowercase hex digits and a newline. */
export function newSubjectKey(): string {
  return `${randomBytes(32).toString('hex')}\n`;
}

/** The subject key in `file`; a ConfigError naming `variable`, the setting that chose the file, otherwise. */
async function readSubjectKey(file: string, variable: string): Promise<Buffer> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw new ConfigError([`${variable}: cannot read the subject key in ${file}: ${(error as Error).message}`]);
  }
  if (!SUBJECT_KEY.test(text)) throw new ConfigError([`${variable}: the subject key in ${file} must be 64 lowercase hex digits (32 random bytes)`]);
  return Buffer.from(text, 'hex');
}

/** Writes `text` to `file` (mode 0600) unless it exists; returns whether it wrote. */
async function writeOnce(file: string, text: string): Promise<boolean> {
  try {
    await writeFile(file, text, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

/** A new key's name: the host plus a random suffix, valid as a note key name. */
function defaultKeyName(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '') || 'host';
  return `auditledger-${host}-${randomBytes(3).toString('hex')}`;
}

const PRIVATE_EXPECTS = 'our signing key text from `auditledger keygen` (PRIVATE+KEY+…), or an Ed25519 PKCS#8 PEM';
const PUBLIC_EXPECTS = 'our verifier key text (`auditledger key show`), or an Ed25519 SPKI PEM';

/** The Ed25519 key of a PEM; KeyError naming the key type it refuses (the PEM is never repeated). */
function pemKey(text: string, read: (pem: string) => KeyObject, expects: string): KeyObject {
  let key: KeyObject;
  try {
    key = read(text);
  } catch {
    throw new KeyError(`not a readable PEM key (expects ${expects})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(`${(key.asymmetricKeyType ?? 'unknown').toUpperCase()} keys are refused: checkpoints are signed with Ed25519 (C2SP signed-note); expects ${expects}`);
  }
  return key;
}

/**
 * A signing key from text: ours (`auditledger keygen`, PRIVATE+KEY+…), or an Ed25519 PKCS#8 PEM,
 * which carries no name, so it gets `pemName`. Throws KeyError for anything else (an RSA or EC
 * PEM named as such), never repeating the text.
 */
export function readSigningKey(text: string, pemName: string): SigningKey {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    // The JWK of an Ed25519 private key carries its 32-byte RFC 8032 seed as `d`.
    const jwk = pemKey(trimmed, (pem) => createPrivateKey(pem), PRIVATE_EXPECTS).export({ format: 'jwk' });
    return signingKeyFromSeed(pemName, Buffer.from(jwk.d!, 'base64url'));
  }
  if (trimmed.startsWith('PRIVATE+KEY+')) return parseSigningKey(trimmed);
  throw new KeyError(`not a signing key; expects ${PRIVATE_EXPECTS}`);
}

/** The 32-byte Ed25519 public key of our verifier key text or an Ed25519 SPKI PEM; KeyError otherwise. */
export function readPublicKey(text: string): Uint8Array {
  const trimmed = text.trim();
  if (!trimmed.startsWith('-----BEGIN')) return parseVerifierKey(trimmed).publicKey;
  return Buffer.from(pemKey(trimmed, (pem) => createPublicKey(pem), PUBLIC_EXPECTS).export({ format: 'jwk' }).x!, 'base64url');
}

/** The key in `file`; a ConfigError naming `variable`, the setting that chose the file, otherwise. */
async function readKey(file: string, variable: string): Promise<SigningKey> {
  try {
    return readSigningKey(await readFile(file, 'utf8'), PEM_KEY_NAME);
  } catch (error) {
    throw new ConfigError([`${variable}: cannot use the signing key in ${file}: ${(error as Error).message}`]);
  }
}

/**
 * The keyring: the signing key (AUDITLEDGER_SIGNING_KEY_FILE, or DATA_DIR/signing-key) and the
 * subject key of keyed subject digests (AUDITLEDGER_SUBJECT_KEY_FILE, or DATA_DIR/subject-key),
 * each generated (mode 0600) on first start when its variable is unset, with a warning. Throws
 * ConfigError when a key file cannot be read or holds no valid key.
 */
export async function loadKeyring(config: Config, log: Logger): Promise<Keyring> {
  const current = await keyFile(config, {
    variable: 'AUDITLEDGER_SIGNING_KEY_FILE',
    name: 'signing-key',
    generate: () => `${encodeSigningKey(generateSigningKey(defaultKeyName()))}\n`,
    read: readKey,
    warning: 'generated a signing key in the data dir; production keys belong in a secret store (AUDITLEDGER_SIGNING_KEY_FILE)',
  }, log);
  const subjectKey = await keyFile(config, {
    variable: 'AUDITLEDGER_SUBJECT_KEY_FILE',
    name: 'subject-key',
    generate: newSubjectKey,
    read: readSubjectKey,
    warning: 'generated a subject key in the data dir; keep it with the signing key (AUDITLEDGER_SUBJECT_KEY_FILE): erasure needs the same key forever',
  }, log);
  return { current, retired: config.AUDITLEDGER_RETIRED_KEYS, origin: config.AUDITLEDGER_ORIGIN ?? current.name, subjectKey };
}

/**
 * A key read from the file its variable names, or else from DATA_DIR/`name`, generated there
 * (mode 0600, written once even when processes start together) with a warning on first start.
 * `read` throws ConfigError naming the variable (or AUDITLEDGER_DATA_DIR) when the file is unusable.
 */
async function keyFile<K>(
  config: Config,
  key: { variable: 'AUDITLEDGER_SIGNING_KEY_FILE' | 'AUDITLEDGER_SUBJECT_KEY_FILE'; name: string; generate: () => string; read: (file: string, variable: string) => Promise<K>; warning: string },
  log: Logger,
): Promise<K> {
  const given = config[key.variable];
  if (given) return key.read(given, key.variable);
  const file = path.join(config.AUDITLEDGER_DATA_DIR, key.name);
  await makeDirectory(config.AUDITLEDGER_DATA_DIR);
  if (await writeOnce(file, key.generate())) log.warn({ file }, key.warning);
  return key.read(file, 'AUDITLEDGER_DATA_DIR');
}

/** Every key whose signatures verify: the current one first, then the retired ones. */
export function verifiers(keyring: Keyring): VerifierKey[] {
  return [keyring.current, ...keyring.retired];
}
