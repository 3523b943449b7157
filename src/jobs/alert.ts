import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.js';

export interface AlertTarget {
  url: string;
  /** Key of the HMAC-SHA256 signature, so the receiver knows the alert is ours. */
  secret: string;
  attempts?: number;
  baseDelayMs?: number;
}

/** The configured webhook (AUDITLEDGER_ALERT_WEBHOOK and its secret), if any. */
export function alertTarget(config: Config): AlertTarget | undefined {
  return config.AUDITLEDGER_ALERT_WEBHOOK ? { url: config.AUDITLEDGER_ALERT_WEBHOOK, secret: config.AUDITLEDGER_ALERT_WEBHOOK_SECRET! } : undefined;
}

export const SIGNATURE_HEADER = 'x-auditledger-signature';

export function signAlert(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * POSTs an alert as JSON with its HMAC-SHA256 signature, retrying network errors and non-2xx
 * answers with exponential backoff. Returns whether it was delivered; never throws.
 */
export async function sendAlert(target: AlertTarget, payload: unknown, log: Logger): Promise<boolean> {
  const body = JSON.stringify(payload);
  const attempts = target.attempts ?? 5;
  const baseDelayMs = target.baseDelayMs ?? 1000;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signAlert(target.secret, body) },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      if (res.ok) return true;
      log.warn({ status: res.status, attempt }, 'alert webhook refused the alert');
    } catch (error) {
      log.warn({ err: (error as Error).message, attempt }, 'alert webhook unreachable');
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, baseDelayMs * 2 ** (attempt - 1)));
  }
  log.error({ attempts }, 'alert not delivered');
  return false;
}
