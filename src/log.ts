import pino, { type Logger } from 'pino';

/** Structured JSON logs on stdout. Secrets never reach a log call; these paths are redacted in case. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'auditledger' },
    redact: ['*.authorization', '*.token', '*.password', '*.connectionString'],
  });
}
