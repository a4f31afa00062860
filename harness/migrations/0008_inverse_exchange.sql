-- Data-parallel K-FAC and SUA with their inverses spread over the processes: the sharing of
-- the inverses on a refresh, as the statistics exchange (0003). 0 in rows written before, when
-- every process computed every inverse.

ALTER TABLE iterations ADD COLUMN comm_inverse_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_inverse_wait_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN comm_inverse_bytes INTEGER NOT NULL DEFAULT 0;
