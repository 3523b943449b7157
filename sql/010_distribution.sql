-- Every table holding a chain's data is keyed by the chain's id (environment_id), so that the
-- schema distributes by chain on Citus (README "Scaling out"; the rule is src/store/distribution.ts,
-- checked against the catalog by test/store/distribution.test.ts). Ids stay unique (UUIDv7); the
-- keys only gain the chain in front, and every lookup by id already names its chain.

ALTER TABLE findings DROP CONSTRAINT findings_run_id_fkey;

ALTER TABLE findings DROP CONSTRAINT findings_pkey, ADD PRIMARY KEY (environment_id, id);
ALTER TABLE verification_runs DROP CONSTRAINT verification_runs_pkey, ADD PRIMARY KEY (environment_id, id);
ALTER TABLE seals DROP CONSTRAINT seals_pkey, ADD PRIMARY KEY (environment_id, id);

-- A finding and its run are on one shard.
ALTER TABLE findings ADD CONSTRAINT findings_run_fkey
  FOREIGN KEY (environment_id, run_id) REFERENCES verification_runs (environment_id, id);

-- The rate limit per token counts the token's runs on its own chain (a token belongs to one).
DROP INDEX verification_runs_token;
CREATE INDEX verification_runs_token ON verification_runs (environment_id, token_id, created_at) WHERE token_id IS NOT NULL;
