-- Scheduled verification: how far each chain is verified, each run, and what was found.

-- The last verified point of each chain: the next run starts after it.
CREATE TABLE chain_verification (
  environment_id uuid PRIMARY KEY,
  verified_seq bigint NOT NULL,
  verified_hash bytea NOT NULL,
  verified_range bytea[] NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE verification_runs (
  id uuid PRIMARY KEY,
  environment_id uuid NOT NULL,
  requested_by text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'error')),
  from_seq bigint,
  to_seq bigint,
  ok boolean,
  checked bigint,
  duration_ms integer,
  first_failure jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX verification_runs_chain ON verification_runs (environment_id, created_at DESC);

-- A failure is recorded once (and alerted once), however many runs see it again.
CREATE TABLE findings (
  id uuid PRIMARY KEY,
  environment_id uuid NOT NULL,
  run_id uuid NOT NULL REFERENCES verification_runs (id),
  seq bigint,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX findings_once ON findings (environment_id, coalesce(seq, -1), reason);

GRANT SELECT ON chain_verification, findings TO auditledger_app;
GRANT SELECT, INSERT ON verification_runs TO auditledger_app;
