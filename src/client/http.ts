// Requests to the ledger, with retries of network errors and 5xx answers.
import { LedgerHttpError, LegalHoldError } from './errors.js';

export interface RetryPolicy {
  /** Tries per request, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 5000 };

/** Supplies the bearer token of a request: the token of the chain its events belong to. */
export type Bearer = () => Promise<string>;

/** Requests to the ledger: bearer token, timeout, and retries of network errors and 5xx answers. */
export class Http {
  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly retry: RetryPolicy,
    private readonly timeoutMs: number,
    private readonly fetch: typeof globalThis.fetch,
  ) {}

  /**
   * The first answer below 500; throws the last failure once the attempts are used up. `bearer`,
   * when given, supplies the token on each attempt (its failures are retried too). An error
   * marked `retryable: false` (a ContextError; one a custom fetch or `bearer` throws) is thrown at once.
   */
  async request(method: 'GET' | 'POST', route: string, json?: string, bearer?: Bearer): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      let failure: Error;
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${bearer ? await bearer() : this.token}` };
        if (json !== undefined) headers['content-type'] = 'application/json';
        const res = await this.fetch(`${this.base}${route}`, { method, headers, body: json, signal: AbortSignal.timeout(this.timeoutMs) });
        if (res.status < 500) return res;
        failure = await httpError(res);
      } catch (error) {
        if (isNonRetryable(error)) throw error;
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (attempt >= this.retry.attempts) throw failure;
      await sleep(backoff(this.retry, attempt));
    }
  }

  /** The answer to a request (with the JSON text `json` as its body, if given), once it is a 2xx; a 4xx or 5xx is thrown as a LedgerHttpError. */
  async ok(method: 'GET' | 'POST', route: string, bearer?: Bearer, json?: string): Promise<Response> {
    const res = await this.request(method, route, json, bearer);
    if (!res.ok) throw await httpError(res);
    return res;
  }

  async json<T>(method: 'GET' | 'POST', route: string, bearer?: Bearer, json?: string): Promise<T> {
    return (await (await this.ok(method, route, bearer, json)).json()) as T;
  }
}

/**
 * An error that trying again cannot cure, marked so by a `retryable` property that is false (a
 * ContextError; library mode's wrong database password): its request is not retried.
 */
export function isNonRetryable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;
}

/**
 * The ledger's error answer as an error: a LegalHoldError for a 409 `legal_hold` naming its hold,
 * else a LedgerHttpError with the answer's code, message and field details.
 */
export async function httpError(res: Response): Promise<LedgerHttpError> {
  const text = await res.text().catch(() => '');
  let error: { code?: string; message?: string; details?: { field: string; message: string }[] | { hold?: unknown; reason?: unknown } } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // Not the ledger's JSON (a proxy's page, say): the text itself is the best message.
  }
  const hold = error.details && !Array.isArray(error.details) ? error.details : undefined;
  if (res.status === 409 && error.code === 'legal_hold' && typeof hold?.hold === 'string' && typeof hold.reason === 'string') {
    return new LegalHoldError(error.message ?? 'a legal hold covers this erasure', { id: hold.hold, reason: hold.reason });
  }
  const details = Array.isArray(error.details) ? error.details : [];
  return new LedgerHttpError(res.status, error.code ?? 'http_error', error.message ?? (text.slice(0, 200) || res.statusText), details);
}

/** Exponential, half of it random so that clients that failed together do not retry together. */
function backoff({ baseDelayMs, maxDelayMs }: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
