// The main package's entry: one createAuditLogClient for both modes, chosen by configuration.
// With `database`, library mode (src/library.ts): the ledger runs inside the application.
// With `url` and `token`, HTTP mode (src/client/client.ts): a ledger server elsewhere.
// Both return the same AuditLog, so an application switches mode by changing its options only.
import { createAuditLogClient as createHttpClient, type AuditLogClient, type AuditLogClientOptions } from './client/client.js';
import { createLibraryClient, LibraryOptionsError, type LibraryOptions } from './library.js';

export {
  BacklogFullError,
  ClientClosedError,
  ContextError,
  CreateEventsError,
  DeliveryError,
  LedgerHttpError,
  LegalHoldError,
  VerificationError,
  isErased,
  isMismatch,
  type AuditLogClient,
  type AuditLogClientOptions,
  type ChainContext,
  type ConsistencyResult,
  type Erasable,
  type ErasedMarker,
  type Erasure,
  type ErasureRequest,
  type EventFilters,
  type NewEvent,
  type MismatchMarker,
  type NewEvents,
  type ReadEvent,
  type ReadParty,
  type Receipt,
  type RetryPolicy,
  type StoredEvent,
  type VerifyRun,
} from './client/client.js';
export { initializeDatabase, LibraryOptionsError, type DatabaseOptions, type LibraryOptions } from './library.js';
export { DatabaseUnavailableError } from './store/errors.js';
export type { AuditEvent } from './ledger/event.js';

/** The client of either mode: the methods setContext, createEvent, createEvents, flush, close, query, verify, erase, checkConsistency and checkInclusion, and the property lastReceipt. */
export type AuditLog = AuditLogClient;

/**
 * A client of the ledger: library mode when `options.database` is given (then `crypto` is
 * required too), HTTP mode when `url` and `token` are. Throws LibraryOptionsError (library mode)
 * or RangeError/TypeError (HTTP mode) for options that are wrong, naming the option.
 */
export function createAuditLogClient(options: LibraryOptions | AuditLogClientOptions): AuditLog {
  if (options !== null && typeof options === 'object' && 'database' in options && 'url' in options) {
    throw new LibraryOptionsError(['options: give `database` (library mode) or `url` and `token` (HTTP mode), not both']);
  }
  if (options !== null && typeof options === 'object' && 'database' in options) return createLibraryClient(options);
  if (options !== null && typeof options === 'object' && 'url' in options && 'token' in options) return createHttpClient(options);
  throw new LibraryOptionsError(['options: give `database` (and `crypto`) for library mode, or `url` and `token` for HTTP mode']);
}
