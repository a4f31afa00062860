-- Regression tracking: each `skfac bench-gains` run stores the mean seconds per step of every
-- optimizer, per stage, on fixed shapes, with the commit and hardware that produced them.
-- `skfac regress` compares ratios between optimizers across records.

CREATE TABLE bench_records (
    id              INTEGER PRIMARY KEY,
    created_at      TEXT NOT NULL,
    git_commit      TEXT NOT NULL,
    -- Tags pointing at the commit when it was recorded, space-separated.
    git_tags        TEXT NOT NULL DEFAULT '',
    cpu_model       TEXT NOT NULL,
    threads         INTEGER NOT NULL,
    crate_versions  TEXT NOT NULL,
    model           TEXT NOT NULL,
    batch           INTEGER NOT NULL,
    -- Timed steps per optimizer.
    steps           INTEGER NOT NULL,
    -- The hyper-parameters every optimizer ran with, as JSON.
    hyper           TEXT NOT NULL
);

CREATE TABLE bench_stages (
    record_id     INTEGER NOT NULL REFERENCES bench_records(id) ON DELETE CASCADE,
    optimizer     TEXT NOT NULL,
    samples       INTEGER,
    forward       REAL NOT NULL,
    backward      REAL NOT NULL,
    statistics    REAL NOT NULL,
    inverse       REAL NOT NULL,
    precondition  REAL NOT NULL,
    communication REAL NOT NULL,
    "update"      REAL NOT NULL
);
CREATE INDEX bench_stages_record ON bench_stages(record_id);
