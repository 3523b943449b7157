/** A write that contradicts what is stored (a duplicate name, a chain that holds events). */
export class ConflictError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

/**
 * An append refused because its received_at falls in a UTC day that takes no more events: the
 * day is sealed, or it has no partition. The server's clock (AUDITLEDGER_CLOCK_OFFSET included)
 * decides received_at, so this is the server's state, not the request's fault. Nothing was written.
 */
export class DayClosedError extends Error {
  constructor(
    readonly receivedAt: Date,
    readonly reason: 'sealed' | 'no_partition',
  ) {
    const day = receivedAt.toISOString().slice(0, 10);
    super(
      reason === 'sealed'
        ? `the server's clock puts this append at ${receivedAt.toISOString()}, in ${day}, a day that is sealed and takes no new events; check the server's clock and AUDITLEDGER_CLOCK_OFFSET`
        : `the server's clock puts this append at ${receivedAt.toISOString()}, in ${day}, a day with no events partition; check the server's clock and AUDITLEDGER_CLOCK_OFFSET`,
    );
    this.name = 'DayClosedError';
  }
}

/**
 * An append refused because its events were split under a personal data policy other than the
 * chain's (README "Personal data and erasure"): another process changed it since this one cached
 * it. Nothing was written; the caller splits the events again under the chain's policy.
 */
export class PolicyChangedError extends Error {
  constructor(readonly environment: string) {
    super(`the personal data policy of chain ${environment} changed since its events were split`);
    this.name = 'PolicyChangedError';
  }
}

/**
 * A chain head row that is not a chain head: its compact range does not fit its seq (rangeProblem).
 * Only a change outside auditledger makes one; verification reports it as a finding of the chain.
 */
export class ChainHeadDamagedError extends Error {
  constructor(
    readonly environment: string,
    /** The head's seq, where verification reports the damage. */
    readonly seq: number,
    readonly problem: string,
  ) {
    super(`the chain head of ${environment} is damaged: ${problem}`);
    this.name = 'ChainHeadDamagedError';
  }
}

const UNIQUE_VIOLATION = '23505';
const CHECK_VIOLATION = '23514';
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * The error an insert of rows received at `receivedAt` threw, as a DayClosedError when it is the
 * sealed partition's trigger (sql/004_seals.sql) or PostgreSQL finding no partition for the row;
 * any other error as it is.
 */
export function dayClosed(error: unknown, receivedAt: Date): unknown {
  const { code, message = '' } = error as { code?: string; message?: string };
  if (code === INSUFFICIENT_PRIVILEGE && /^auditledger: partition \S+ is sealed/.test(message)) return new DayClosedError(receivedAt, 'sealed');
  if (code === CHECK_VIOLATION && /^no partition of relation/.test(message)) return new DayClosedError(receivedAt, 'no_partition');
  return error;
}

/** Runs `write`, turning a unique-constraint violation into a ConflictError about `field`. */
export async function uniquely<T>(field: string, message: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw new ConflictError(message, field);
    throw error;
  }
}

/** The database did not let us in: nothing answers at its address, or it refused the login. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}

// Socket errors of a database that is not there; PostgreSQL's refusals of a login
// (invalid_authorization_specification, invalid_password, invalid_catalog_name: no such database);
// and a server shutting down or starting (admin_shutdown, crash_shutdown, cannot_connect_now).
const UNAVAILABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', '28000', '28P01', '3D000', '57P01', '57P02', '57P03']);

// What pg and pg-pool throw, without a code, when a connection is not made in time or is lost.
const LOST = /^(timeout exceeded when trying to connect|Connection terminated unexpectedly|Connection terminated due to connection timeout)$/;

// Refusals no retry can cure: PostgreSQL's (invalid_authorization_specification, invalid_password,
// invalid_catalog_name) and pg's own SCRAM errors, thrown before the server is asked (a password
// the server wants and the URL lacks, a server signature that does not match).
const LOGIN_REFUSED = new Set(['28000', '28P01', '3D000']);
const SASL = /^SASL: /;

/** Whether `error` is the database refusing the login: wrong role, password or database name. */
export function isLoginRefused(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return (code !== undefined && LOGIN_REFUSED.has(code)) || SASL.test((error as Error).message ?? '');
}

/**
 * Whether `error` says the database cannot be used now (not there, refusing the login, not taking
 * connections, or gone mid-query), rather than that a statement failed. Node's AggregateError
 * (every address of a host refused) is judged by its first error.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const first = error instanceof AggregateError ? (error.errors[0] as Error | undefined) : undefined;
  const code = (error as { code?: string }).code ?? (first as { code?: string } | undefined)?.code;
  return (code !== undefined && UNAVAILABLE.has(code)) || LOST.test((error as Error).message ?? '') || isLoginRefused(error);
}

/**
 * The error a first query on `url` threw, as a DatabaseUnavailableError naming `variable` and the
 * URL's host, port and database (never its password) when the database could not be used at all
 * (see isDatabaseUnavailable); any other error as it is.
 */
export function unavailable(error: unknown, url: string, variable: string): unknown {
  if (!isDatabaseUnavailable(error)) return error;
  const first = error instanceof AggregateError ? (error.errors[0] as Error | undefined) : undefined;
  const code = (error as { code?: string }).code ?? (first as { code?: string } | undefined)?.code;
  const { hostname, port, pathname } = new URL(url);
  let reason = (error as Error).message || first?.message || code;
  if (/client password must be a string/.test(reason ?? '')) reason = 'the server asks for a password and none was given';
  return new DatabaseUnavailableError(`cannot use the database at ${hostname}:${port || 5432}${pathname} (${variable}): ${reason}`, { cause: error });
}
