-- Foundation: tenants, tokens, chain heads and the immutable, day-partitioned events table.

-- The app role: what the API server runs as. It may add and read events, never change them.
-- Created here only when missing, so a DBA can create it beforehand on a managed PostgreSQL.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditledger_app') THEN
    CREATE ROLE auditledger_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- created by a concurrent migration of another database in the same cluster
END
$$;

-- The owner may switch to the app role, which is how the server drops its rights when it
-- is given only DATABASE_URL.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'auditledger_app', 'MEMBER') THEN
    EXECUTE format('GRANT auditledger_app TO %I', current_user);
  END IF;
END
$$;

CREATE TABLE projects (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE environments (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TABLE api_tokens (
  id uuid PRIMARY KEY,
  environment_id uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
  name text NOT NULL,
  digest bytea NOT NULL UNIQUE CHECK (length(digest) = 32),
  scopes text[] NOT NULL,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_environment ON api_tokens (environment_id, id);

-- Digests of admin tokens; the token itself is never stored.
CREATE TABLE admin_tokens (
  digest bytea PRIMARY KEY CHECK (length(digest) = 32),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One chain per environment (a project+environment): the head of its hash chain and Merkle tree.
CREATE TABLE chain_heads (
  environment_id uuid PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
  seq bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
  hash bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
  compact_range bytea[] NOT NULL DEFAULT '{}',
  last_received_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events: one row per appended event, partitioned by UTC day of received_at.
-- `canonical` holds the exact RFC 8785 bytes that were hashed; the other payload columns are
-- extracted copies for filtering, which verification checks against those bytes.
CREATE TABLE events (
  environment_id uuid NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 1),
  id uuid NOT NULL,
  received_at timestamptz NOT NULL,
  prev bytea NOT NULL CHECK (length(prev) = 32),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  canonical bytea NOT NULL,
  action text NOT NULL,
  crud "char",
  actor_id text,
  target_id text,
  group_id text,
  created timestamptz,
  PRIMARY KEY (environment_id, seq, received_at)
) PARTITION BY RANGE (received_at);

CREATE FUNCTION auditledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'auditledger: events are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'audit events can never be updated, deleted or truncated; sealed partitions leave only through the retention job';
END
$$;

-- Row triggers on the parent are cloned to every partition, present and future.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
-- TRUNCATE triggers are per table: the parent here, each partition in auditledger_ensure_partition.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION auditledger_refuse_change();

-- Creates the partition for one UTC day if missing; returns its name.
CREATE FUNCTION auditledger_ensure_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  partition text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
  -- Processes starting together would otherwise race to create the same partition.
  PERFORM pg_advisory_xact_lock(hashtext('auditledger_ensure_partition'));
  IF to_regclass(partition) IS NULL THEN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
      partition, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
    EXECUTE format(
      'CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION auditledger_refuse_change()',
      partition);
    EXECUTE format('GRANT SELECT, INSERT ON %I TO auditledger_app', partition);
  END IF;
  RETURN partition;
END
$$;

REVOKE ALL ON events FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO auditledger_app;
GRANT SELECT, INSERT ON events TO auditledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON projects, environments TO auditledger_app;
GRANT SELECT, INSERT, UPDATE ON api_tokens TO auditledger_app;
GRANT SELECT, INSERT, UPDATE ON chain_heads TO auditledger_app;
GRANT SELECT ON admin_tokens, schema_migrations TO auditledger_app;
