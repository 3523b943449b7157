import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { encodeSigningKey, generateSigningKey, isValidKeyName, keyIdHex, verifierKey } from '../ledger/keys.js';
import { PEM_KEY_NAME, readSigningKey } from '../signing-key.js';
import type { Archive } from '../archive/archive.js';
import { findArchivedEvent, proveFromArchive } from '../archive/proof.js';
import type { VerifierKey } from '../ledger/keys.js';
import { uuidv7Time } from '../ledger/uuid.js';
import { verifyProofDocument } from '../ledger/proof-document.js';
import { archiveArgument, NoArchiveError } from './verify-archive.js';
import { chainOption, parseOptions, readArgumentFile, UsageError, verifierKeys, type Verb } from './verb.js';

// NAME.key must fit the 255 bytes most file systems allow a file name; the default file name is
// ASCII, so this many characters.
const MAX_KEY_NAME_LENGTH = 251;
// Control and format characters (C0, DEL, C1, zero-width and bidi marks): refused as well as what
// C2SP forbids, so a new key's name prints as what it is.
const UNPRINTABLE = /[\p{Cc}\p{Cf}]/u;

/** NAME of keygen: a C2SP key name (c2sp.org/signed-note: non-empty, no spaces, no '+'), printable, bounded. */
function keyName(name: string | undefined): string {
  if (!name) throw new UsageError('--name NAME is required');
  if (!isValidKeyName(name) || UNPRINTABLE.test(name)) {
    throw new UsageError(`--name ${JSON.stringify(name)}: a key name must be printable, with no spaces and no '+' (C2SP signed-note)`);
  }
  if ([...name].length > MAX_KEY_NAME_LENGTH) throw new UsageError(`--name: a key name has at most ${MAX_KEY_NAME_LENGTH} characters`);
  return name;
}

/**
 * The default key file of a key name, in the current folder: every character but ASCII letters,
 * digits, '.', '_' and '-' becomes '_', and so does a leading '.' or '-' (no hidden file, no
 * option-like name), then `.key`. `example.com/log` gives `example.com_log.key`; `../x` gives `_._x.key`.
 */
function defaultKeyFile(name: string): string {
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]/, '_')}.key`;
}

export const keygen: Verb = {
  summary: 'create an ed25519 signing key and print its verifier key',
  usage: `auditledger keygen --name NAME [--out FILE]

Writes a new signing key to FILE (mode 0600; never overwritten) and prints its verifier key (vkey)
in C2SP form <name>+<key id>+<base64 key>. Point AUDITLEDGER_SIGNING_KEY_FILE at the file; give
the vkey to whoever verifies checkpoints and archives.

NAME     the key's name (C2SP signed-note): printable, no spaces, no '+', at most ${MAX_KEY_NAME_LENGTH}
         characters; a C2SP origin such as example.com/log is fine
--out    default: NAME.key in the current folder, with every character but letters, digits, '.',
         '_' and '-' (and a leading '.' or '-') replaced by '_': example.com/log -> example.com_log.key`,
  async run(args) {
    const { values } = parseOptions(args, { name: { type: 'string' }, out: { type: 'string' } });
    const name = keyName(values.name);
    if (values.out === '') throw new UsageError('--out takes a file name');
    const out = values.out ?? defaultKeyFile(name);
    const key = generateSigningKey(name);
    try {
      await writeFile(out, `${encodeSigningKey(key)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${out} exists; keys are never overwritten`);
      throw new UsageError(`cannot write ${out}: ${(error as Error).message}`);
    }
    process.stderr.write(`signing key written to ${path.resolve(out)} (mode 0600)\n`);
    process.stdout.write(`${verifierKey(key)}\n`);
    return 0;
  },
};

export const key: Verb = {
  summary: 'key utilities: show prints the verifier key of a signing key file',
  usage: `auditledger key show FILE

Reads the signing key in FILE (as keygen writes it, an Ed25519 PEM, or AUDITLEDGER_SIGNING_KEY_FILE) and prints its
verifier key (vkey) on stdout, and its name and key id on stderr. Never prints the private key.
Exit code 2 when FILE cannot be read, 1 when it is not a valid signing key.`,
  async run(args) {
    const { positionals } = parseOptions(args, {}, true);
    if (positionals[0] !== 'show' || positionals.length !== 2) throw new UsageError("usage: auditledger key show FILE (the only key command is 'show')");
    const file = positionals[1]!;
    const text = await readArgumentFile(file);
    let signingKey;
    try {
      signingKey = readSigningKey(text, PEM_KEY_NAME);
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
  summary: 'check a saved inclusion or consistency proof offline, or prove an event from the archive alone',
  usage: `auditledger verify-proof FILE --key VKEY [--key VKEY...]
auditledger verify-proof --archive <folder | s3://bucket/prefix> --chain PROJECT/ENVIRONMENT (--seq N | --id UUID)
    [--event FILE] [--size N] --key VKEY [--key VKEY...]

FILE is a saved answer of GET /v1/events/:id/proof or GET /v1/consistency. Checks its shape (naming
a member missing or of the wrong type), the signed checkpoint(s) with the given verifier keys, the
event bytes against the leaf hash, the RFC 9162 proof, and that the root (roots) it states is the
one proven, with no database and no server. --chain: the project's and environment's ids (UUIDs).
With --archive, proves event N of the chain from the archive alone: its checkpoint note of tree size
--size (default: the chain's latest) and the O(log n) hash tiles the proof needs (C2SP tlog-tiles,
under tlog/PROJECT/ENVIRONMENT/). --event: a file of the event's canonical bytes (its "canonical"),
checked against the leaf. --id: the event by its id instead of its seq, found in the bundles of
the UTC day its UUIDv7 was made (so sealed events only), whose bytes are then checked against the
leaf too. S3 settings as for verify-archive.
Exit code 0 when it holds, 1 with the reason when not.`,
  async run(args) {
    const { values, positionals } = parseOptions(
      args,
      {
        key: { type: 'string', multiple: true },
        archive: { type: 'string' },
        chain: { type: 'string' },
        seq: { type: 'string' },
        id: { type: 'string' },
        size: { type: 'string' },
        event: { type: 'string' },
      },
      true,
    );
    const keys = verifierKeys(values.key);
    if (values.archive !== undefined) return proveFromArchiveArgs(values, positionals, keys);
    if (positionals.length !== 1) throw new UsageError('give exactly one proof FILE, or --archive');
    const file = positionals[0]!;
    const text = await readArgumentFile(file);
    return report(() => verifyProofDocument(parseJson(file, text), keys));
  },
};

async function proveFromArchiveArgs(
  values: { archive?: string; chain?: string; seq?: string; id?: string; size?: string; event?: string },
  positionals: string[],
  verifiers: VerifierKey[],
): Promise<number> {
  if (positionals.length) throw new UsageError('--archive takes no proof FILE');
  const chain = chainOption(values.chain);
  if (!chain) throw new UsageError('--archive needs --chain PROJECT/ENVIRONMENT');
  if (values.seq !== undefined && values.id !== undefined) throw new UsageError('--archive takes one of --seq N or --id UUID, not both');
  if (values.seq === undefined && values.id === undefined) throw new UsageError('--archive needs one of --seq N or --id UUID');
  if (values.id !== undefined && uuidv7Time(values.id) === undefined) {
    throw new UsageError(`--id takes an event id, a UUIDv7 (RFC 9562) such as 01890a5d-ac96-774b-bcce-b302099a8057; got ${JSON.stringify(values.id)}`);
  }
  const [project, environment] = chain.split('/') as [string, string];
  const seq = values.seq === undefined ? undefined : positiveInteger('--seq', values.seq);
  const size = values.size === undefined ? undefined : positiveInteger('--size', values.size);
  const event = values.event === undefined ? undefined : await readArgumentFile(values.event);
  let archive: Archive;
  try {
    archive = await archiveArgument(values.archive!);
  } catch (error) {
    if (!(error instanceof NoArchiveError)) throw error;
    throw new UsageError(`--archive: ${error.message}`);
  }
  return report(async () => {
    // By id, the event's bytes are found in its bundle, and checked against the leaf as --event's are.
    const found = seq === undefined ? await findArchivedEvent(archive, project, environment, values.id!) : undefined;
    const canonical = event ?? found?.canonical.toString('utf8');
    return proveFromArchive(archive, { project, environment, seq: seq ?? found!.seq, size, canonical, verifiers });
  });
}

/** Prints `ok: ...` and returns 0 when `check` holds; `FAILED: reason` and 1 when it throws. */
async function report(check: () => string | Promise<string>): Promise<number> {
  try {
    process.stdout.write(`ok: ${await check()}\n`);
    return 0;
  } catch (error) {
    process.stdout.write(`FAILED: ${(error as Error).message}\n`);
    return 1;
  }
}

function positiveInteger(option: string, value: string): number {
  if (!/^[1-9][0-9]*$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`${option} takes a positive integer`);
  return Number(value);
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${file} is not JSON`);
  }
}
