-- Sealing: each chain's events of one UTC day become one signed bundle in the archive.

CREATE TABLE seals (
  id uuid PRIMARY KEY,
  environment_id uuid NOT NULL,
  partition date NOT NULL,
  first_seq bigint NOT NULL,
  last_seq bigint NOT NULL,
  root bytea NOT NULL CHECK (length(root) = 32),
  -- The compact range at last_seq: the next bundle's start_range.
  end_range bytea[] NOT NULL,
  last_hash bytea NOT NULL CHECK (length(last_hash) = 32),
  manifest text NOT NULL,
  manifest_sha256 bytea NOT NULL,
  archive_location text NOT NULL,
  archive_key text NOT NULL,
  version_id text,
  sha256 bytea NOT NULL CHECK (length(sha256) = 32),
  bytes bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (environment_id, partition),
  CHECK (first_seq <= last_seq)
);
CREATE INDEX seals_chain ON seals (environment_id, last_seq);

-- A partition is sealed once every chain in it has its bundle stored and recorded.
CREATE TABLE sealed_partitions (
  partition date PRIMARY KEY,
  bundles integer NOT NULL,
  sealed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals FOR EACH STATEMENT EXECUTE FUNCTION auditledger_refuse_change();

CREATE FUNCTION auditledger_refuse_sealed_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'auditledger: partition % is sealed: new rows are refused', TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Marks a day sealed and makes its partition refuse new rows (row triggers fire for rows routed
-- through the parent too).
CREATE FUNCTION auditledger_seal_partition(day date, bundle_count integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  partition text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
  INSERT INTO sealed_partitions (partition, bundles) VALUES (day, bundle_count) ON CONFLICT DO NOTHING;
  IF to_regclass(partition) IS NOT NULL AND NOT EXISTS (
      SELECT FROM pg_trigger WHERE tgrelid = partition::regclass AND tgname = 'events_sealed') THEN
    EXECUTE format(
      'CREATE TRIGGER events_sealed BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_sealed_insert()',
      partition);
  END IF;
END
$$;

GRANT SELECT ON seals, sealed_partitions TO auditledger_app;
