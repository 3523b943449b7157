-- How far each chain's hash tiles are in the archive (objects tlog/<project>/<environment>/tile/...,
-- C2SP tlog-tiles): every tile of the tree at tree_size is there, full and partial. The checkpoint
-- job writes the tiles from here to the latest checkpoint, then moves this on; a chain without a
-- row (archived before tiles were) gets all its tiles on the next run.
CREATE TABLE archived_tiles (
  environment_id uuid PRIMARY KEY,
  tree_size bigint NOT NULL CHECK (tree_size >= 0)
);
