-- Seconds a fixed CPU workload took just before each epoch: the machine's speed then, which a
-- shared host's other guests change without any sign in the load average. NULL in rows
-- written before.

ALTER TABLE epochs ADD COLUMN probe_seconds REAL;
