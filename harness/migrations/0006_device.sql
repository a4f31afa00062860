-- The device each run and benchmark computed on: `cpu`, or `cuda:N (GPU name)`. NULL in rows
-- written before, all of which ran on the CPU.

ALTER TABLE runs ADD COLUMN device TEXT;
ALTER TABLE bench_records ADD COLUMN device TEXT;
