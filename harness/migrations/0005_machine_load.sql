-- How busy the machine was while each epoch trained, so that a report can tell times taken
-- on a machine shared with other work: the epoch's own training seconds, the process's CPU
-- seconds (all threads, user and system) over the same span, and the mean 1-minute load
-- average; with the machine's logical CPUs per run. NULL in rows written before.

ALTER TABLE epochs ADD COLUMN epoch_seconds REAL;
ALTER TABLE epochs ADD COLUMN cpu_seconds REAL;
ALTER TABLE epochs ADD COLUMN load_average REAL;

ALTER TABLE runs ADD COLUMN cores INTEGER;
