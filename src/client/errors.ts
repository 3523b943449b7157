// What the client's promises reject with.

/** The backlog is full: the event was not queued. */
export class BacklogFullError extends Error {
  override name = 'BacklogFullError';
  constructor(readonly limit: number) {
    super(`the audit event backlog is full (${limit} events wait for the ledger): the event was not queued`);
  }
}

/** The ledger refused a request (4xx), or kept failing (5xx). */
export class LedgerHttpError extends Error {
  override name = 'LedgerHttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { field: string; message: string }[] = [],
  ) {
    super(`auditledger answered ${status} ${code}: ${message}`);
  }
}

/**
 * An erasure refused because an active legal hold covers it (409 `legal_hold`): nothing was
 * erased. `hold` is the hold's id and recorded reason; lift it first (admin route
 * DELETE /v1/projects/:projectId/holds/:holdId).
 */
export class LegalHoldError extends LedgerHttpError {
  override name = 'LegalHoldError';
  constructor(
    message: string,
    readonly hold: { id: string; reason: string },
  ) {
    super(409, 'legal_hold', message);
  }
}

/** Events that did not reach the ledger. `spooled`: they are safe in the spool and a later client sends them. */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(
    message: string,
    readonly spooled: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class ClientClosedError extends Error {
  override name = 'ClientClosedError';
  constructor() {
    super('the audit log client is closed: the event was not queued');
  }
}

/**
 * The events' context (setContext's project and environment) cannot be used: none was set in
 * library mode, an id names nothing, or (HTTP mode) the token is for another chain. Not retried.
 */
export class ContextError extends Error {
  override name = 'ContextError';
  /** Trying again cannot cure it (see isNonRetryable). */
  readonly retryable = false;
}

/** A page read with `verify: true` did not verify: the ledger found these failures (seq 0: the chain as a whole). */
export class VerificationError extends Error {
  override name = 'VerificationError';
  constructor(readonly failures: readonly { seq: number; reason: string }[]) {
    super(`the events read do not verify: ${failures.map((f) => `seq ${f.seq}: ${f.reason}`).join('; ')}`);
  }
}

/**
 * Some events of one createEvents call were not stored. `results` has one entry per event, in
 * order: its receipt (stored) or why not. The message names the first failure by its index
 * (`events[1]: …`) and counts the events stored.
 */
export class CreateEventsError extends Error {
  override name = 'CreateEventsError';
  readonly receipts: readonly ({ id: string; seq: number } | undefined)[];
  readonly errors: readonly (Error | undefined)[];
  constructor(results: readonly PromiseSettledResult<{ id: string; seq: number }>[]) {
    const firstFailed = results.findIndex((r) => r.status === 'rejected');
    const failure = (results[firstFailed] as PromiseRejectedResult).reason as Error;
    const stored = results.filter((r) => r.status === 'fulfilled').length;
    super(`events[${firstFailed}]: ${failure.message} (${stored} of ${results.length} events stored; see receipts and errors)`, { cause: failure });
    this.receipts = results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    this.errors = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined));
  }
}
