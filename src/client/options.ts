// Checks of the client's options, by hand: the client package depends on the noble libraries only.
// Each problem throws at construction, naming the option and never repeating a token or URL.
import type { AuditLogClientOptions } from './client.js';
import { DEFAULT_RETRY, type RetryPolicy } from './http.js';

/** setTimeout's largest delay (2^31 - 1 ms); a larger one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Every option of the HTTP client; the type check below fails when AuditLogClientOptions gains one not listed. */
const HTTP_OPTIONS = [
  'url',
  'token',
  'batchSize',
  'maxBatchBytes',
  'flushIntervalMs',
  'maxBacklog',
  'maxBulkEvents',
  'validateOnQuery',
  'spoolDir',
  'retry',
  'timeoutMs',
  'vkey',
  'fetch',
  'onError',
] as const satisfies readonly (keyof AuditLogClientOptions)[];
type Unlisted = Exclude<keyof AuditLogClientOptions, (typeof HTTP_OPTIONS)[number]>;
const listed: [Unlisted] extends [never] ? true : Unlisted = true;
void listed;

const RETRY_OPTIONS = ['attempts', 'baseDelayMs', 'maxDelayMs'] as const satisfies readonly (keyof RetryPolicy)[];

/**
 * What only the HTTP client's public constructor checks (library mode passes its own internal
 * options past it): no unknown option, `token` a non-empty string of visible ASCII, `url` an
 * http(s) URL with no user, password, query or fragment. Throws TypeError naming the option.
 */
export function checkHttpOptions(options: unknown): asserts options is AuditLogClientOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError('options: must be an object with url and token');
  known('', Object.keys(options), HTTP_OPTIONS);
  const { url, token } = options as Record<string, unknown>;
  if (typeof token !== 'string' || token === '') throw new TypeError('token: required, a non-empty string (an environment token, alt_…)');
  // A token read from a file often ends in a newline, which no HTTP header can carry.
  if (!/^[\x21-\x7e]+$/.test(token)) throw new TypeError('token: must be visible ASCII characters only, no spaces or line breaks (an environment token, alt_…)');
  const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : undefined;
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new TypeError("url: must be an http(s) URL, the ledger's base URL such as https://audit.example.com");
  }
  if (parsed.username !== '' || parsed.password !== '') throw new TypeError('url: must not include a user or password; the token authenticates');
  if (parsed.search !== '' || parsed.hash !== '') throw new TypeError("url: must not have a query or fragment; it is the ledger's base URL");
}

/** `retry` with the defaults filled in; TypeError/RangeError naming `retry.…` when wrong. */
export function retryPolicy(retry: unknown): RetryPolicy {
  if (retry === undefined) return DEFAULT_RETRY;
  if (retry === null || typeof retry !== 'object' || Array.isArray(retry)) throw new TypeError('retry: must be an object {attempts, baseDelayMs, maxDelayMs}');
  known('retry.', Object.keys(retry), RETRY_OPTIONS);
  const given = retry as Partial<Record<keyof RetryPolicy, unknown>>;
  return {
    attempts: integer('retry.attempts', given.attempts ?? DEFAULT_RETRY.attempts, 1),
    baseDelayMs: milliseconds('retry.baseDelayMs', given.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs),
    maxDelayMs: milliseconds('retry.maxDelayMs', given.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs),
  };
}

/** `value` when it is an integer from min to max: TypeError when not a number, RangeError when outside. */
export function integer(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const expected = `must be an integer from ${min} to ${max}`;
  if (typeof value !== 'number') throw new TypeError(`${name}: ${expected}, got ${typeOf(value)}`);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name}: ${expected}, got ${value}`);
  return value;
}

function milliseconds(name: string, value: unknown): number {
  const expected = `must be a number of milliseconds from 0 to ${MAX_TIMER_MS}`;
  if (typeof value !== 'number') throw new TypeError(`${name}: ${expected}, got ${typeOf(value)}`);
  if (!(value >= 0 && value <= MAX_TIMER_MS)) throw new RangeError(`${name}: ${expected}, got ${value}`);
  return value;
}

/** `value`, or `fallback` when undefined; TypeError naming the option when it is not of `type`. */
export function optional<T>(name: string, value: unknown, type: 'boolean' | 'function' | 'string', fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== type || value === '') throw new TypeError(`${name}: must be a${type === 'string' ? ' non-empty' : ''} ${type}, got ${typeOf(value)}`);
  return value as T;
}

function known(prefix: string, keys: string[], allowed: readonly string[]): void {
  const unknown = keys.find((key) => !allowed.includes(key));
  if (unknown !== undefined) throw new TypeError(`${prefix}${unknown}: unknown option; the options are ${allowed.join(', ')}`);
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
