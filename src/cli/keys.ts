import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { encodeSigningKey, generateSigningKey, keyIdHex, parseSigningKey, parseVerifierKey, verifierKey } from '../ledger/keys.js';
import { verifyProofDocument } from '../ledger/verify-proof.js';
import { UsageError, type Verb } from './verb.js';

export const keygen: Verb = {
  summary: 'create an ed25519 signing key and print its verifier key',
  usage: `auditledger keygen --name NAME [--out FILE]

Writes a new signing key to FILE (default ./NAME.key, mode 0600; never overwritten) and prints its
verifier key (vkey) in C2SP form <name>+<key id>+<base64 key>. Point AUDITLEDGER_SIGNING_KEY_FILE
at the file; give the vkey to whoever verifies checkpoints and archives.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { name: { type: 'string' }, out: { type: 'string' } }, strict: true });
    if (!values.name) throw new UsageError('--name is required');
    const key = generateSigningKey(values.name);
    const out = values.out ?? `${values.name}.key`;
    try {
      await writeFile(out, `${encodeSigningKey(key)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${out} exists; keys are never overwritten`);
      throw error;
    }
    process.stderr.write(`signing key written to ${out} (mode 0600)\n`);
    process.stdout.write(`${verifierKey(key)}\n`);
    return 0;
  },
};

export const key: Verb = {
  summary: 'key utilities: show prints the verifier key of a signing key file',
  usage: `auditledger key show FILE

Reads the signing key in FILE (as keygen writes it, or AUDITLEDGER_SIGNING_KEY_FILE) and prints its
verifier key (vkey) on stdout, and its name and key id on stderr. Never prints the private key.
Exit code 2 when FILE cannot be read, 1 when it is not a valid signing key.`,
  async run(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    if (positionals[0] !== 'show' || positionals.length !== 2) throw new UsageError("usage: auditledger key show FILE (the only key command is 'show')");
    const file = positionals[1]!;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    }
    let signingKey;
    try {
      signingKey = parseSigningKey(text);
    } catch (error) {
      process.stderr.write(`auditledger key: ${file} is not a usable signing key: ${(error as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`signing key "${signingKey.name}", key id ${keyIdHex(signingKey.keyId)}, in ${file}\n`);
    process.stdout.write(`${verifierKey(signingKey)}\n`);
    return 0;
  },
};

export const verifyProof: Verb = {
  summary: 'check a saved inclusion or consistency proof offline',
  usage: `auditledger verify-proof FILE --key VKEY [--key VKEY...]

FILE is a saved answer of GET /v1/events/:id/proof or GET /v1/consistency. Checks the signed
checkpoint(s) with the given verifier keys, the event bytes against the leaf hash, and the RFC 9162
proof, with no database and no server. Exit code 0 when it holds, 1 with the reason when not.`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { key: { type: 'string', multiple: true } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError('give exactly one proof FILE');
    if (!values.key?.length) throw new UsageError('give at least one --key VKEY');
    const keys = values.key.map((vkey) => {
      try {
        return parseVerifierKey(vkey);
      } catch (error) {
        throw new UsageError(`--key ${vkey}: ${(error as Error).message}`);
      }
    });
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(positionals[0]!, 'utf8'));
    } catch (error) {
      throw new UsageError(`cannot read ${positionals[0]}: ${(error as Error).message}`);
    }
    try {
      process.stdout.write(`ok: ${verifyProofDocument(doc, keys)}\n`);
      return 0;
    } catch (error) {
      process.stdout.write(`FAILED: ${(error as Error).message}\n`);
      return 1;
    }
  },
};
