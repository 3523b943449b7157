/**
 * How the schema distributes on a sharded PostgreSQL (Citus): every table that holds a chain's
 * data is sharded by the chain's id, `environment_id`, all co-located, so that an append, a
 * query or a verification of one chain runs on one node; the small tenant tables every request
 * reads (projects, environments, tokens) are reference tables, copied to every node.
 *
 * The rule a distributed table keeps (checked against the catalog by test/store/distribution.test.ts):
 * its primary key and each unique index or constraint include `environment_id`, and each of its
 * foreign keys either points at a reference table or includes `environment_id` on both sides.
 * A table created by a migration must be added to one of these lists.
 */

/** The column every distributed table is sharded by: the chain's (environment's) id. */
export const DISTRIBUTION_COLUMN = 'environment_id';

/** Tables sharded by DISTRIBUTION_COLUMN and co-located with `events`. */
export const DISTRIBUTED_TABLES = [
  'events',
  'chain_heads',
  'idempotency_keys',
  'tiles',
  'archived_tiles',
  'checkpoints',
  'seals',
  'chain_verification',
  'verification_runs',
  'findings',
  'personal_values',
] as const;

/**
 * Tables copied whole to every node: tenants and tokens (a token is looked up by its digest
 * before its chain is known), admin tokens, the days sealed (one row per day for all chains),
 * the personal data policies, erasures and legal holds (a project's rows have no chain), and the
 * migrations applied. pg-boss's own schema (`pgboss`) is not ours and stays on the coordinator.
 */
export const REFERENCE_TABLES = ['projects', 'environments', 'api_tokens', 'admin_tokens', 'sealed_partitions', 'personal_data_policies', 'erasures', 'legal_holds', 'schema_migrations'] as const;
