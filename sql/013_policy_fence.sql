-- The seq of each chain's latest auditledger.policy.changed event (0: none recorded since this
-- column), set in the transaction that records the change. An append split under the policy read
-- at another policy_seq is refused and split again (samePolicy in src/store/append.ts): a process whose
-- cached policy is older than the chain's can never append after the change with the old paths.
ALTER TABLE chain_heads ADD COLUMN policy_seq bigint NOT NULL DEFAULT 0 CHECK (policy_seq >= 0);
