-- Appending and reading events: filter indexes and idempotency keys.

-- Lookups by event id, and the filters of GET /v1/events. Each ends in seq so a filtered page
-- comes out of the index in chain order. text_pattern_ops serves `action` prefixes (user.*)
-- whatever the database collation.
CREATE INDEX events_id ON events (environment_id, id);
CREATE INDEX events_action ON events (environment_id, action text_pattern_ops, seq);
CREATE INDEX events_actor ON events (environment_id, actor_id, seq) WHERE actor_id IS NOT NULL;
CREATE INDEX events_target ON events (environment_id, target_id, seq) WHERE target_id IS NOT NULL;

-- Idempotency keys, per chain: a repeated key answers with the original receipt. Kept for at
-- least the configured hours, then pruned by the maintenance job (owner role).
CREATE TABLE idempotency_keys (
  environment_id uuid NOT NULL,
  key text NOT NULL,
  digest bytea NOT NULL CHECK (length(digest) = 32),
  seq bigint NOT NULL,
  id uuid NOT NULL,
  hash bytea NOT NULL,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (environment_id, key)
);
CREATE INDEX idempotency_keys_received_at ON idempotency_keys (received_at);
GRANT SELECT, INSERT ON idempotency_keys TO auditledger_app;
