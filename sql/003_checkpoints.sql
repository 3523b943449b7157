-- Signed checkpoints of each chain (C2SP tlog-checkpoint notes), written by the checkpoint job.

-- One message for every append-only table: name the table and the rule.
CREATE OR REPLACE FUNCTION auditledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'auditledger: audit records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'events and checkpoints can never be updated, deleted or truncated; sealed partitions leave only through the retention job';
END
$$;

CREATE TABLE checkpoints (
  environment_id uuid NOT NULL,
  tree_size bigint NOT NULL CHECK (tree_size >= 1),
  root bytea NOT NULL CHECK (length(root) = 32),
  -- The compact range at tree_size: the next checkpoint extends it with the new leaves only.
  compact_range bytea[] NOT NULL,
  note text NOT NULL,
  key_id bytea NOT NULL CHECK (length(key_id) = 4),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (environment_id, tree_size)
);

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION auditledger_refuse_change();

GRANT SELECT ON checkpoints TO auditledger_app;
