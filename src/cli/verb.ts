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
