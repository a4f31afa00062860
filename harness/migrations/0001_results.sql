-- The results store: sweeps, their runs, per-iteration stage timings and per-epoch metrics.

CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    file        TEXT NOT NULL,
    -- The sweep file's text when it was last started.
    spec        TEXT NOT NULL,
    target_accuracy REAL,
    created_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    sweep_id        INTEGER REFERENCES sweeps(id),
    -- Canonical JSON of the full training configuration: the identity of a run in its sweep.
    run_key         TEXT NOT NULL,
    model           TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    optimizer       TEXT NOT NULL,
    -- skfac-ss's s'; NULL for the other optimizers.
    samples         INTEGER,
    seed            INTEGER NOT NULL,
    -- Every hyper-parameter, as JSON.
    hyper           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed')),
    error           TEXT,
    git_commit      TEXT NOT NULL,
    crate_versions  TEXT NOT NULL,
    cpu_model       TEXT NOT NULL,
    threads         INTEGER NOT NULL,
    -- Distributed strategy and process count (one process until MPI lands).
    processes       INTEGER NOT NULL DEFAULT 1,
    started_at      TEXT NOT NULL,
    ended_at        TEXT,
    UNIQUE (sweep_id, run_key)
);

-- One row per training step. Seconds per stage; evaluation is never part of a step.
CREATE TABLE iterations (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step          INTEGER NOT NULL,
    epoch         INTEGER NOT NULL,
    loss          REAL NOT NULL,
    lr            REAL NOT NULL,
    forward       REAL NOT NULL,
    backward      REAL NOT NULL,
    statistics    REAL NOT NULL,
    inverse       REAL NOT NULL,
    precondition  REAL NOT NULL,
    communication REAL NOT NULL,
    "update"      REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

-- One row per finished epoch (1-based). `wall_seconds`: training time so far, evaluation
-- excluded (as AlgoPerf counts it).
CREATE TABLE epochs (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch           INTEGER NOT NULL,
    train_loss      REAL NOT NULL,
    train_accuracy  REAL NOT NULL,
    test_loss       REAL NOT NULL,
    test_accuracy   REAL NOT NULL,
    wall_seconds    REAL NOT NULL,
    learning_rate   REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
