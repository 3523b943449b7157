-- Personal data (issue 17; docs/format.md "Personal data commitments"): the hashed event body holds
-- a salted commitment for each personal value; the value and its salt live here. This is the
-- erasable store: the app role may delete from it, unlike every table of the chain itself.
CREATE TABLE personal_values (
  -- No foreign key, as events has none: a row is written only in the statement that writes its
  -- event (after locking the chain head), and a chain with events is never deleted. Its check
  -- would cost a lookup per row, more than a third of the rows' insert cost.
  environment_id uuid NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 1),
  -- The row's number among its event's rows (one per subject): the key, since a subject may be NULL.
  part smallint NOT NULL CHECK (part >= 1),
  -- HMAC-SHA-256 under the subject key of project || 0x00 || subject id; NULL for the values
  -- whose subject the event does not name (they then go only with their event).
  subject_digest bytea CHECK (length(subject_digest) = 32),
  -- One row per event and data subject, not per value: a row and its index entries cost about as
  -- much as the event's own. The subject's values in the event, as the RFC 8785 canonical JSON of
  -- an object mapping each RFC 6901 JSON Pointer into the event (a key of the body's
  -- "commitments") to the value that was there.
  pointer_values text NOT NULL,
  -- Each value's 32-byte salt, end to end, in the member order of pointer_values.
  salts bytea NOT NULL CHECK (length(salts) > 0 AND length(salts) % 32 = 0),
  PRIMARY KEY (environment_id, seq, part)
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
