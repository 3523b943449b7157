-- Bounded bundles: a chain's day is sealed into as many bundles as AUDITLEDGER_BUNDLE_MAX_EVENTS
-- makes it, so a seal is one bundle of a chain, no longer one per chain and day. A bundle is
-- identified by its chain and first seq.
ALTER TABLE seals DROP CONSTRAINT seals_environment_id_partition_key;
ALTER TABLE seals ADD CONSTRAINT seals_environment_id_first_seq_key UNIQUE (environment_id, first_seq);
