import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

async function run(args: string[]) {
  const cli = runCli(args, {});
  const { code } = await cli.exited;
  return { code, output: cli.output() };
}

describe('auditledger key show', () => {
  let dir: string;
  let file: string;
  let vkey: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-keys-'));
    file = path.join(dir, 'ledger.key');
    const made = await run(['keygen', '--name', 'test-ledger', '--out', file]);
    expect(made.code).toBe(0);
    vkey = made.output.match(/^test-ledger\+[0-9a-f]{8}\+\S+$/m)![0];
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints the verifier key of an existing key file, its name and key id, and never the private key', async () => {
    // The seed's base64 follows the fourth '+' and may itself contain '+'.
    const secret = (await readFile(file, 'utf8')).trim().split('+').slice(4).join('+');
    const shown = await run(['key', 'show', file]);
    expect(shown.code).toBe(0);
    expect(shown.output).toContain(`${vkey}\n`);
    expect(shown.output).toContain(`signing key "test-ledger", key id ${vkey.split('+')[1]}`);
    expect(shown.output).not.toContain(secret);
  });

  it('answers one clear line for a missing file (2) and a file that is not a signing key (1)', async () => {
    const missing = await run(['key', 'show', path.join(dir, 'nope.key')]);
    expect(missing.code).toBe(2);
    expect(missing.output).toMatch(/^auditledger key: cannot read .*nope\.key: ENOENT[^\n]*\n$/);

    const directory = await run(['key', 'show', dir]);
    expect(directory.code).toBe(2);
    expect(directory.output).toMatch(/^auditledger key: cannot read [^\n]*\n$/);

    const verifier = path.join(dir, 'verifier.key');
    await writeFile(verifier, `${vkey}\n`);
    const wrong = await run(['key', 'show', verifier]);
    expect(wrong.code).toBe(1);
    expect(wrong.output).toMatch(/^auditledger key: .*verifier\.key is not a usable signing key: not a signing key; expects our signing key text[^\n]*\n$/);

    // An Ed25519 PEM is a signing key (as AUDITLEDGER_SIGNING_KEY_FILE takes it); an RSA one is refused by name.
    const ed = path.join(dir, 'ed25519.pem');
    await writeFile(ed, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const fromPem = await run(['key', 'show', ed]);
    expect(fromPem.code, fromPem.output).toBe(0);
    expect(fromPem.output).toMatch(/^signing key "auditledger", key id [0-9a-f]{8}, in /m);
    const rsa = path.join(dir, 'rsa.pem');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const refused = await run(['key', 'show', rsa]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/rsa\.pem is not a usable signing key: RSA keys are refused: checkpoints are signed with Ed25519/);

    // A mangled file whose key id field holds the seed: the error does not repeat it.
    // The seed's base64 follows the fourth '+' and may itself contain '+'.
    const secret = (await readFile(file, 'utf8')).trim().split('+').slice(4).join('+');
    const mangled = path.join(dir, 'mangled.key');
    await writeFile(mangled, `PRIVATE+KEY+test-ledger+${secret}+x\n`);
    const bad = await run(['key', 'show', mangled]);
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/key id must be 8 hex digits/);
    expect(bad.output).not.toContain(secret.slice(0, 6));
  });

  it('refuses other key commands as usage errors (2)', async () => {
    for (const args of [['key'], ['key', 'show'], ['key', 'delete', file], ['key', 'show', file, file]]) {
      const res = await run(args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.output, args.join(' ')).toMatch(/^auditledger key: usage: auditledger key show FILE/);
    }
  });
});
