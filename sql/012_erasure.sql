-- Erasure of a data subject's personal values (GDPR Art. 17) and the legal holds that stop it
-- (issue 17; README "Personal data and erasure"). The values themselves are in personal_values.

-- One row per project and subject erased: what each chain's erasure event said, so that a repeated
-- request answers with the same receipts and appends nothing. Keyed by the subject's keyed digest
-- (src/ledger/personal.ts subjectDigest): the subject's id is never stored.
CREATE TABLE erasures (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  subject_digest bytea NOT NULL CHECK (length(subject_digest) = 32),
  requested_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- {environment id: values erased in that chain, all requests together}
  counts jsonb NOT NULL DEFAULT '{}',
  -- {environment id: the receipt of that chain's latest erasure event}
  receipts jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (project_id, subject_digest)
);

-- A legal hold on a project, one of its environments (environment_id) or one subject of the
-- project (subject_digest): while it is not lifted, an erasure it covers is refused.
CREATE TABLE legal_holds (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  subject_digest bytea CHECK (length(subject_digest) = 32),
  reason text NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT now(),
  lifted_at timestamptz
);
CREATE INDEX legal_holds_active ON legal_holds (project_id) WHERE lifted_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON erasures TO auditledger_app;
GRANT SELECT, INSERT, UPDATE ON legal_holds TO auditledger_app;
-- An idempotency key's digest covers the event as sent, personal values included: an erasure
-- deletes the keys of the events it erased values of.
GRANT DELETE ON idempotency_keys TO auditledger_app;
