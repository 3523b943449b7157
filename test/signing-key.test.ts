// The server's signing key file: our key text, or an Ed25519 PEM; other PEMs are refused by name.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { openNote, signNote } from '../src/ledger/note.js';
import { PEM_KEY_NAME, loadKeyring, readPublicKey } from '../src/signing-key.js';

describe('AUDITLEDGER_SIGNING_KEY_FILE', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-signing-key-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const keyring = async (pem: string) => {
    const file = path.join(dir, `${Math.random()}.pem`);
    await writeFile(file, pem);
    return loadKeyring(loadConfig({ AUDITLEDGER_SIGNING_KEY_FILE: file, AUDITLEDGER_DATA_DIR: dir }), pino({ level: 'silent' }));
  };

  it('takes an Ed25519 PKCS#8 PEM: its signatures verify with the PEM public key, under the fixed name', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const { current, origin } = await keyring(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    expect(current.name).toBe(PEM_KEY_NAME);
    expect(origin).toBe(PEM_KEY_NAME);
    expect(Buffer.from(current.publicKey)).toEqual(Buffer.from(readPublicKey(publicKey.export({ type: 'spki', format: 'pem' }) as string)));
    const note = signNote('origin\n1\nAAAA\n', [current]);
    expect(openNote(note, [current]).text).toBe('origin\n1\nAAAA\n');
  });

  it('refuses an RSA PEM naming its type and the variable, without repeating the key', async () => {
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const error = await keyring(pem).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/AUDITLEDGER_SIGNING_KEY_FILE: cannot use the signing key in .*: RSA keys are refused/);
    expect((error as Error).message).not.toContain(pem.split('\n')[1]!);
  });
});
