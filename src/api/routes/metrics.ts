import { Hono } from 'hono';
import type { Pools } from '../../store/database.js';
import { withDeadline } from '../../deadline.js';
import { ledgerGauges, type LedgerGauges } from '../../store/metrics.js';
import type { AppEnv } from '../context.js';
import { gauge, type AppendMetrics } from '../metrics.js';

/**
 * GET /metrics: Prometheus text format. The ledger's figures are read from the database at scrape
 * time; when it errs or does not answer within `timeoutMs`, the scrape still answers with the
 * process's own figures and `auditledger_database_up 0`, rather than failing or hanging.
 */
export function metricsRoutes(pools: Pools, append: AppendMetrics, timeoutMs: number) {
  return new Hono<AppEnv>().get('/metrics', async (c) => {
    const g = await withDeadline(ledgerGauges(pools.owner), timeoutMs, 'the database').catch(() => undefined);
    const poolSamples = (['app', 'owner'] as const).flatMap((name): [Record<string, string>, number][] => {
      const pool = pools[name];
      return [
        [{ pool: name, state: 'total' }, pool.totalCount],
        [{ pool: name, state: 'idle' }, pool.idleCount],
        [{ pool: name, state: 'waiting' }, pool.waitingCount],
      ];
    });
    const text = [
      append.render(),
      gauge('auditledger_database_up', 'Whether the database answered this scrape (1) or not (0).', [[{}, g ? 1 : 0]]),
      gauge('auditledger_db_pool_connections', 'Database pool connections by state.', poolSamples),
      // Each process of `serve --workers` answers for itself: this says which one did.
      gauge('auditledger_process_info', 'The process that answered this scrape.', [[{ pid: String(process.pid) }, 1]]),
      ...(g ? ledgerText(g) : []),
    ].join('');
    return c.text(text, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  });
}

/** The ledger's figures, read from the database. */
function ledgerText(g: LedgerGauges): string[] {
  return [
    gauge('auditledger_chains', 'Chains (project environments).', [[{}, g.chains]]),
    gauge('auditledger_chains_behind_checkpoint', 'Chains whose head moved past their latest signed checkpoint.', [[{}, g.chains_behind_checkpoint]]),
    gauge('auditledger_checkpoint_lag_events', 'Most events of one chain not yet under a signed checkpoint.', [[{}, g.max_events_behind_checkpoint]]),
    gauge('auditledger_seal_lag_days', 'Age in days of the oldest ended day not yet sealed.', [[{}, g.oldest_unsealed_day_age_days]]),
    gauge(
      'auditledger_verification_runs',
      'Verification runs by status and result.',
      g.verification_runs.map((r) => [{ status: r.status, ok: r.ok }, r.count]),
    ),
    gauge('auditledger_findings', 'Verification findings recorded.', [[{}, g.findings]]),
    gauge('auditledger_queue_depth', 'pg-boss jobs waiting, by queue.', g.queues.map((q) => [{ queue: q.name }, q.count])),
  ];
}
