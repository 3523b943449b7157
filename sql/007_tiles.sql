-- Hash tiles of each chain's Merkle tree (C2SP tlog-tiles, height 8): proofs and roots read
-- O(log n) rows instead of every leaf hash. Only full tiles are stored; the partial tile at the
-- right edge of each level is derived from at most 255 rows (the events' hashes for level 0, the
-- roots of the full tiles one level down otherwise). The append path writes the tiles an append
-- completes in the transaction of its events.

CREATE TABLE tiles (
  environment_id uuid NOT NULL,
  level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
  tile_index bigint NOT NULL CHECK (tile_index >= 0),
  -- 256 hashes end to end: leaf hashes at level 0, roots of full level-(L-1) tiles above.
  hashes bytea NOT NULL CHECK (length(hashes) = 8192),
  -- MTH of the 256 hashes: a hash of level L + 1, read by partial tiles above without hashing 8 KB.
  root bytea NOT NULL CHECK (length(root) = 32),
  PRIMARY KEY (environment_id, level, tile_index)
);

CREATE TRIGGER tiles_no_update BEFORE UPDATE ON tiles FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER tiles_no_delete BEFORE DELETE ON tiles FOR EACH ROW EXECUTE FUNCTION auditledger_refuse_change();
CREATE TRIGGER tiles_no_truncate BEFORE TRUNCATE ON tiles FOR EACH STATEMENT EXECUTE FUNCTION auditledger_refuse_change();

GRANT SELECT, INSERT ON tiles TO auditledger_app;

-- Backfill, here so that every chain has all its full tiles from this version on (the append path
-- and the proofs rely on it). A tile whose events are gone (a partition dropped by retention) is
-- left out; the verifiers report it missing.

-- MTH of a full tile's 256 hashes (RFC 9162 section 2.1.1): eight rounds of SHA-256(0x01 || l || r).
CREATE FUNCTION pg_temp.tile_root(hashes bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  level bytea := hashes;
  next bytea;
BEGIN
  WHILE length(level) > 32 LOOP
    next := '';
    FOR i IN 0 .. length(level) / 64 - 1 LOOP
      next := next || sha256('\x01'::bytea || substring(level FROM i * 64 + 1 FOR 64));
    END LOOP;
    level := next;
  END LOOP;
  RETURN level;
END
$$;

-- Level 0: each run of 256 stored events up to the head.
INSERT INTO tiles (environment_id, level, tile_index, hashes, root)
SELECT environment_id, 0, tile_index, hashes, pg_temp.tile_root(hashes)
  FROM (SELECT e.environment_id, (e.seq - 1) / 256 AS tile_index, string_agg(e.hash, ''::bytea ORDER BY e.seq) AS hashes
          FROM events e JOIN chain_heads h ON h.environment_id = e.environment_id AND e.seq <= h.seq
         GROUP BY e.environment_id, (e.seq - 1) / 256
        HAVING count(DISTINCT e.seq) = 256 AND count(*) = 256) full_runs;

-- Level L: each run of 256 full tiles of level L - 1, while a level gains any.
DO $$
DECLARE
  lvl integer := 1;
  added bigint;
BEGIN
  LOOP
    INSERT INTO tiles (environment_id, level, tile_index, hashes, root)
    SELECT environment_id, lvl, tile_index, hashes, pg_temp.tile_root(hashes)
      FROM (SELECT environment_id, tile_index / 256 AS tile_index, string_agg(root, ''::bytea ORDER BY tile_index) AS hashes
              FROM tiles WHERE level = lvl - 1
             GROUP BY environment_id, tile_index / 256
            HAVING count(*) = 256) full_runs;
    GET DIAGNOSTICS added = ROW_COUNT;
    EXIT WHEN added = 0;
    lvl := lvl + 1;
  END LOOP;
END
$$;

DROP FUNCTION pg_temp.tile_root(bytea);
