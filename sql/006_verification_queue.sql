-- Runs asked for through the API: at most one waits per chain, and each is counted against its token.

-- The token that asked for the run (null for the schedule and the seal job): the rate limit per
-- token counts these rows, so it holds across every server process on the database.
ALTER TABLE verification_runs ADD COLUMN token_id uuid;
CREATE INDEX verification_runs_token ON verification_runs (token_id, created_at) WHERE token_id IS NOT NULL;

-- Runs queued for one chain before this migration: the newest stays queued, the others are closed.
UPDATE verification_runs r
   SET status = 'error', first_failure = '{"seq": 0, "reason": "superseded by a later queued run of the chain"}', finished_at = now()
 WHERE status = 'queued'
   AND EXISTS (SELECT FROM verification_runs n WHERE n.environment_id = r.environment_id AND n.status = 'queued' AND (n.created_at, n.id) > (r.created_at, r.id));

-- One queued run per chain: asking again while it waits answers that run instead of queueing another.
CREATE UNIQUE INDEX verification_runs_one_queued ON verification_runs (environment_id) WHERE status = 'queued';

-- Runs are queued by the jobs (on the owner role) in the transaction that sends their job.
REVOKE INSERT ON verification_runs FROM auditledger_app;
