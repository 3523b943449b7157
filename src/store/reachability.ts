import type pg from 'pg';
import type { Logger } from 'pino';

/**
 * Watches whether the database answers: a `SELECT 1` every `intervalMs`, one at a time, so a
 * probe stuck on an unreachable host does not pile up others. Logs when the database stops and
 * starts answering; `onFailure` hears of each failed probe (the service then checks whether its
 * embedded PostgreSQL still runs).
 */
export class Reachability {
  private lastAnswer = Date.now();
  private probing = false;
  private answering = true;
  private readonly timer: NodeJS.Timeout;

  constructor(db: pg.Pool, intervalMs: number, log: Logger, onFailure: () => void) {
    this.timer = setInterval(() => {
      if (this.probing) return;
      this.probing = true;
      db.query('SELECT 1')
        .then(
          () => {
            this.lastAnswer = Date.now();
            if (!this.answering) log.info('the database answers again');
            this.answering = true;
          },
          (error: unknown) => {
            if (this.answering) log.warn({ err: error }, 'the database does not answer');
            this.answering = false;
            onFailure();
          },
        )
        .finally(() => (this.probing = false));
    }, intervalMs);
  }

  /** Milliseconds since the database last answered a probe (up to one interval when it answers). */
  unansweredMs(): number {
    return Date.now() - this.lastAnswer;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
