-- Data-parallel runs: the communication stage split into the gradient all-reduce and the
-- K-FAC-family statistics exchange, with the bytes this process contributed to each, and the
-- exchange strategy a run used. `*_seconds` is all the time in the collective calls, of
-- which `*_wait_seconds` was spent waiting for the slowest process (load imbalance).

ALTER TABLE iterations ADD COLUMN comm_gradient_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_gradient_wait_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_gradient_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_statistics_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_statistics_wait_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_statistics_bytes INTEGER NOT NULL DEFAULT 0;

-- `none` (one process), `allreduce-grads` (SGD, Adam), `allreduce-factors` (K-FAC, SUA) or
-- `allgather-rows` (SKFAC).
ALTER TABLE runs ADD COLUMN comm_strategy TEXT NOT NULL DEFAULT 'none';
