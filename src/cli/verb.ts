import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isUtcDay } from '../utc-day.js';
import { parseVerifierKey, type VerifierKey } from '../ledger/keys.js';
import { isUuid } from '../ledger/uuid.js';

/** A command of the `auditledger` CLI: a summary, its usage, and what it does. */
export interface Verb {
  summary: string;
  usage: string;
  /** Returns the exit code. */
  run(args: string[]): Promise<number>;
}

export const CONFIG_HELP = `Configuration comes from the environment; see README.md for every variable.
DATABASE_URL unset: an embedded PostgreSQL under AUDITLEDGER_DATA_DIR (default ./.auditledger).`;

/** A user mistake on the command line: printed as is, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;
/** What parseArgs gives for `options`, spelled out: @types/node does not export the name of its type. */
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>>;

/**
 * node:util parseArgs in strict mode, except that a string option takes the argument after it
 * whatever that looks like, as getopt_long does: `--threads -1` is --threads "-1", checked like any
 * value, rather than parseArgs's "argument is ambiguous". Throws parseArgs's ERR_PARSE_ARGS_* errors
 * (usage errors to main).
 */
export function parseOptions<O extends Options>(args: string[], options: O, allowPositionals = false): Parsed<O> {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      joined.push(...args.slice(i));
      break;
    }
    const option = arg.startsWith('--') ? options[arg.slice(2)] : undefined;
    if (option?.type === 'string' && i + 1 < args.length) joined.push(`${arg}=${args[++i]}`);
    else joined.push(arg);
  }
  return parseArgs({ args: joined, options, allowPositionals, strict: true });
}

/**
 * A UTC day YYYY-MM-DD that exists (not 2026-02-30), from 0001-01-01 to 9999-12-31 as the API
 * takes them; UsageError naming `option` otherwise.
 */
export function utcDay(option: string, value: string): string {
  if (!isUtcDay(value)) throw new UsageError(`${option} takes a UTC day YYYY-MM-DD from 0001-01-01 to 9999-12-31, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * --chain PROJECT/ENVIRONMENT of verify-archive and verify-proof: the two ids, UUIDs as the API
 * gives them, lowercased as archive keys spell them; UsageError otherwise (so `../..` names no
 * folder of the archive).
 */
export function chainOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ids = value.split('/');
  if (ids.length !== 2 || !ids.every(isUuid)) throw new UsageError(`--chain takes PROJECT/ENVIRONMENT, their ids (UUIDs), got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

/** The text of a file named on the command line; UsageError (exit 2) when it cannot be read. */
export async function readArgumentFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/**
 * The verifier keys of --key options: at least one, each a valid vkey; UsageError naming the bad
 * one by its place, never by its text (a signing key given by mistake must not reach a log).
 */
export function verifierKeys(vkeys: string[] | undefined): VerifierKey[] {
  if (!vkeys?.length) throw new UsageError('give at least one --key VKEY');
  return vkeys.map((vkey, i) => {
    const which = vkeys.length > 1 ? `--key (the ${ordinal(i + 1)})` : '--key';
    try {
      return parseVerifierKey(vkey);
    } catch (error) {
      throw new UsageError(`${which}: ${(error as Error).message}`);
    }
  });
}

const ordinal = (n: number) => `${n}${n % 10 === 1 && n % 100 !== 11 ? 'st' : n % 10 === 2 && n % 100 !== 12 ? 'nd' : n % 10 === 3 && n % 100 !== 13 ? 'rd' : 'th'}`;
