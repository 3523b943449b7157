-- Personal data (issue 17; docs/format.md "Personal data commitments"): the hashed event body holds
-- a salted commitment for each personal value; the value and its salt live here. This is the
-- erasable store: the app role may delete from it, unlike every table of the chain itself.
CREATE TABLE personal_values (
  -- No foreign key, as events has none: a row is written only in the statement that writes its
  -- event (after locking the chain head), and a chain with events is never deleted. Its check
  -- would cost a lookup per row, more than a third of the rows' insert cost.
  environment_id uuid NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 1),
  -- RFC 6901 JSON Pointer into the event: the key of the body's "commitments" member.
  pointer text NOT NULL,
  -- HMAC-SHA-256 under the subject key of project || 0x00 || subject id; NULL when the event
  -- names no subject for the value (it then goes only with its event).
  subject_digest bytea CHECK (length(subject_digest) = 32),
  salt bytea NOT NULL CHECK (length(salt) = 32),
  -- RFC 8785 canonical JSON of the value.
  value text NOT NULL,
  PRIMARY KEY (environment_id, seq, pointer)
);
-- Erasure finds a subject's values chain by chain.
CREATE INDEX personal_values_subject ON personal_values (environment_id, subject_digest) WHERE subject_digest IS NOT NULL;

-- Which event paths are personal, for a project (environment_id NULL) or one of its
-- environments (overrides the project's). No row: the default policy (src/ledger/personal.ts).
CREATE TABLE personal_data_policies (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  policy jsonb NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE NULLS NOT DISTINCT (project_id, environment_id)
);

GRANT SELECT, INSERT, DELETE ON personal_values TO auditledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON personal_data_policies TO auditledger_app;
