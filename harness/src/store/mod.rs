//! The results store: an SQLite database (WAL, busy timeout, schema from the migrations
//! embedded in the binary) holding sweeps, runs, per-iteration stage times and per-epoch
//! metrics. The training loop is synchronous; the store drives sqlx on a private
//! current-thread runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use optimizers::{OptimizerKind, Traffic};

use crate::train::StepTimes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

mod bench;
mod report;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One SQL term per stage, in [`StepTimes::NAMES`]' order, joined by commas: the stage
/// columns of `iterations` and `bench_stages` are named as the stages are.
pub(crate) fn stage_columns(term: impl Fn(&str) -> String) -> String {
    StepTimes::NAMES
        .iter()
        .map(|n| term(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where results go unless `--db` says otherwise.
pub const DEFAULT_DB: &str = "results/runs.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: written by a newer skfac (schema migration {version} is unknown to this one); it was left untouched: use that newer skfac, or another --db")]
    NewerSchema { path: PathBuf, version: i64 },
    #[error("{path}: not an SQLite database ({detail}): pass another --db, or move the file away")]
    NotADatabase { path: PathBuf, detail: String },
    #[error(
        "{path}: read-only ({detail}): make the file and its folder writable, or pass another --db"
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error("{path}: locked by another process for longer than {seconds} s ({detail}): wait for it to finish or stop it, then run the command again")]
    Locked {
        path: PathBuf,
        seconds: f64,
        detail: String,
    },
    #[error("{path}: the disk is full ({detail}): free some space, then run the command again; nothing written before is lost")]
    Full { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Sql { path: PathBuf, detail: String },
    #[error("{path}: schema migration failed: {detail}")]
    Migrate { path: PathBuf, detail: String },
    #[error("cannot create {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// How long a write waits for another process's lock before giving up, unless
/// `SKFAC_BUSY_SECONDS` says otherwise (tests; slow network file systems).
fn busy_timeout() -> Duration {
    std::env::var("SKFAC_BUSY_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

impl StoreError {
    /// An SQLite error on `path`, sorted by what the user can do about it. The message is
    /// SQLite's own, once (sqlx's wrapping repeats it).
    fn from_sql(path: &Path, e: &sqlx::Error) -> StoreError {
        let path = path.to_path_buf();
        let (code, detail) = match e {
            sqlx::Error::Database(d) => (
                d.code().and_then(|c| c.parse::<i64>().ok()),
                d.message().to_string(),
            ),
            other => (None, other.to_string()),
        };
        // Primary result codes (the low byte of the extended ones): SQLITE_BUSY 5,
        // SQLITE_LOCKED 6, SQLITE_READONLY 8, SQLITE_FULL 13, SQLITE_NOTADB 26.
        match code.map(|c| c & 0xff) {
            Some(26) => StoreError::NotADatabase { path, detail },
            Some(8) => StoreError::ReadOnly { path, detail },
            Some(5 | 6) => StoreError::Locked {
                path,
                seconds: busy_timeout().as_secs_f64(),
                detail,
            },
            Some(13) => StoreError::Full { path, detail },
            _ => StoreError::Sql { path, detail },
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// How a run ended (or that it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Finished,
    Diverged,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "finished" => Status::Finished,
            "diverged" => Status::Diverged,
            "failed" => Status::Failed,
            _ => Status::Running,
        }
    }

    /// Finished and diverged runs are done; a sweep skips them.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Finished | Status::Diverged)
    }
}

/// What identifies and describes a run.
#[derive(Clone, Debug)]
pub struct RunMeta {
    pub run_key: String,
    pub model: String,
    pub dataset: String,
    pub optimizer: OptimizerKind,
    pub samples: Option<usize>,
    pub seed: u64,
    pub hyper_json: String,
    pub git_commit: String,
    pub crate_versions: String,
    pub cpu_model: String,
    pub threads: usize,
    /// Where it computed ([`crate::device::describe`]).
    pub device: String,
    /// Logical CPUs of the machine, against which a report reads its load average.
    pub cores: usize,
    /// Processes of a data-parallel run (1 alone) and how they exchange statistics.
    pub processes: usize,
    pub comm_strategy: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IterationRow {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub times: StepTimes,
    pub traffic: Traffic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub wall_seconds: f64,
    pub learning_rate: f64,
    /// This epoch's training seconds, the process's CPU seconds over them and the mean load
    /// average; `None` in rows from before they were recorded, or where there is none.
    pub epoch_seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub load_average: Option<f64>,
    /// On the validation split; `None` for runs without one.
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    /// Seconds of the speed probe timed before the epoch; `None` in rows from before it.
    pub probe_seconds: Option<f64>,
}

/// A run as listed back from the store.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: i64,
    pub run_key: String,
    pub optimizer: String,
    pub samples: Option<i64>,
    pub seed: i64,
    pub status: Status,
    pub error: Option<String>,
}

/// One connection to a results database. Not `Sync`: it drives sqlx on a private
/// current-thread runtime, which two threads must not share (their transactions interleave);
/// a thread that needs the store opens its own.
pub struct Store {
    rt: tokio::runtime::Runtime,
    pool: SqlitePool,
    path: PathBuf,
    _one_thread: std::marker::PhantomData<std::cell::Cell<()>>,
}

/// Seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn now() -> String {
    // RFC 3339 in UTC without a date-time dependency: seconds since the epoch, formatted.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// A database from a newer schema is refused and left as it is.
    pub fn open(path: &Path) -> Result<Store> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|err| StoreError::Io {
                path: dir.to_path_buf(),
                err,
            })?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| StoreError::Io {
                path: path.clone(),
                err,
            })?;
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout())
            .foreign_keys(true);
        let sql = |e| StoreError::from_sql(&path, &e);
        let pool = rt
            .block_on(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts),
            )
            .map_err(sql)?;
        // Two processes opening a fresh store at once must not both create its tables: the
        // migrations run under an exclusive lock on a file beside the database. Never the
        // database file itself: closing any descriptor of it would drop the POSIX locks that
        // SQLite holds through this process's other connections. Where the folder is
        // read-only there is no lock file, and nothing to migrate either.
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path);
        if let Ok(f) = &lock {
            // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(f), libc::LOCK_EX) };
        }
        rt.block_on(MIGRATOR.run(&pool)).map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::NewerSchema {
                path: path.clone(),
                version,
            },
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from_sql(&path, &e),
            other => StoreError::Migrate {
                path: path.clone(),
                detail: other.to_string(),
            },
        })?;
        Ok(Store {
            rt,
            pool,
            path,
            _one_thread: std::marker::PhantomData,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, e: sqlx::Error) -> StoreError {
        StoreError::from_sql(&self.path, &e)
    }

    /// The id of sweep `name`, recording its file and text (updated when started again).
    pub fn sweep(&self, name: &str, file: &str, spec: &str, target: Option<f64>) -> Result<i64> {
        let q = sqlx::query(
            "INSERT INTO sweeps (name, file, spec, target_accuracy, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET file = excluded.file, spec = excluded.spec,
                 target_accuracy = excluded.target_accuracy
             RETURNING id",
        )
        .bind(name)
        .bind(file)
        .bind(spec)
        .bind(target)
        .bind(now());
        let row = self
            .rt
            .block_on(q.fetch_one(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(row.get(0))
    }

    /// Sweep `name`'s id, file and the file's text when it was last started, if it exists.
    pub fn sweep_spec(&self, name: &str) -> Result<Option<(i64, String, String)>> {
        let q = sqlx::query("SELECT id, file, spec FROM sweeps WHERE name = ?").bind(name);
        let row = self
            .rt
            .block_on(q.fetch_optional(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    /// The run with `key` in `sweep`, if it exists.
    pub fn find_run(&self, sweep: i64, key: &str) -> Result<Option<RunRecord>> {
        let q = sqlx::query(
            "SELECT id, run_key, optimizer, samples, seed, status, error FROM runs
             WHERE sweep_id = ? AND run_key = ?",
        )
        .bind(sweep)
        .bind(key);
        let row = self
            .rt
            .block_on(q.fetch_optional(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(row.map(|r| record(&r)))
    }

    /// Marks a run as running, creating it if new; returns its id, or `None` when the run is
    /// finished or diverged already (another process may have just finished it).
    pub fn start_run(&self, sweep: Option<i64>, m: &RunMeta) -> Result<Option<i64>> {
        let q = sqlx::query(
            "INSERT INTO runs (sweep_id, run_key, model, dataset, optimizer, samples, seed, hyper,
                 status, git_commit, crate_versions, cpu_model, threads, started_at, processes,
                 comm_strategy, cores, device)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(sweep_id, run_key) DO UPDATE SET status = 'running', error = NULL,
                 ended_at = NULL, processes = excluded.processes,
                 comm_strategy = excluded.comm_strategy, cores = excluded.cores,
                 device = excluded.device
             WHERE runs.status NOT IN ('finished', 'diverged')
             RETURNING id",
        )
        .bind(sweep)
        .bind(&m.run_key)
        .bind(&m.model)
        .bind(&m.dataset)
        .bind(m.optimizer.name())
        .bind(m.samples.map(|s| s as i64))
        .bind(m.seed as i64)
        .bind(&m.hyper_json)
        .bind(&m.git_commit)
        .bind(&m.crate_versions)
        .bind(&m.cpu_model)
        .bind(m.threads as i64)
        .bind(now())
        .bind(m.processes as i64)
        .bind(&m.comm_strategy)
        .bind(m.cores as i64)
        .bind(&m.device);
        let row = self
            .rt
            .block_on(q.fetch_optional(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Takes the lease on `run` for `owner` until `seconds` from now, if no other process
    /// holds an unexpired one and the run is not done. Renewing one's own lease also succeeds.
    pub fn claim_run(&self, run: i64, owner: &str, seconds: f64) -> Result<bool> {
        let now = unix_now();
        let q = sqlx::query(
            "UPDATE runs SET lease_owner = ?1, lease_until = ?2
             WHERE id = ?3 AND status NOT IN ('finished', 'diverged')
               AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_until < ?4)",
        )
        .bind(owner)
        .bind(now + seconds)
        .bind(run)
        .bind(now);
        let done = self
            .rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes over `run`'s lease from `stale`, a holder known to be dead (a process of this
    /// machine that no longer exists), if it still holds it.
    pub fn take_over_run(&self, run: i64, stale: &str, owner: &str, seconds: f64) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE runs SET lease_owner = ?, lease_until = ?
             WHERE id = ? AND lease_owner = ? AND status NOT IN ('finished', 'diverged')",
        )
        .bind(owner)
        .bind(unix_now() + seconds)
        .bind(run)
        .bind(stale);
        let done = self
            .rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds `run`'s lease, if anyone.
    pub fn lease_holder(&self, run: i64) -> Result<Option<String>> {
        let q = sqlx::query("SELECT lease_owner FROM runs WHERE id = ?").bind(run);
        let row = self
            .rt
            .block_on(q.fetch_optional(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    /// Extends `owner`'s lease on `run`; `false` when it no longer holds it.
    pub fn renew_lease(&self, run: i64, owner: &str, seconds: f64) -> Result<bool> {
        let q = sqlx::query("UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ?")
            .bind(unix_now() + seconds)
            .bind(run)
            .bind(owner);
        let done = self
            .rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `owner`'s lease on `run`, if it holds it.
    pub fn release_run(&self, run: i64, owner: &str) -> Result<()> {
        let q = sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(run)
        .bind(owner);
        self.rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn end_run(&self, run: i64, status: Status, error: Option<&str>) -> Result<()> {
        let q = sqlx::query("UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .bind(run);
        self.rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Drops what a run logged past its checkpoint: steps `>= steps_done`, epochs
    /// `> epochs_done`. With zeros, a fresh start.
    pub fn truncate_run(&self, run: i64, steps_done: usize, epochs_done: usize) -> Result<()> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM iterations WHERE run_id = ? AND step >= ?")
                    .bind(run)
                    .bind(steps_done as i64)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM epochs WHERE run_id = ? AND epoch > ?")
                    .bind(run)
                    .bind(epochs_done as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
            .map_err(|e| self.sql(e))
    }

    /// Writes iteration rows in one transaction.
    pub fn write_iterations(&self, run: i64, rows: &[IterationRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.rt
            .block_on(async {
                let sql = format!(
                    "INSERT INTO iterations (run_id, step, epoch, loss, lr, {},
                         comm_gradient_seconds, comm_gradient_wait_seconds, comm_gradient_bytes,
                         comm_statistics_seconds, comm_statistics_wait_seconds,
                         comm_statistics_bytes, comm_inverse_seconds, comm_inverse_wait_seconds,
                         comm_inverse_bytes)
                     VALUES (?, ?, ?, ?, ?, {}, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    stage_columns(|n| format!("\"{n}\"")),
                    stage_columns(|_| "?".into())
                );
                let mut tx = self.pool.begin().await?;
                for r in rows {
                    let mut q = sqlx::query(&sql)
                        .bind(run)
                        .bind(r.step as i64)
                        .bind(r.epoch as i64)
                        .bind(r.loss)
                        .bind(r.lr);
                    for v in r.times.values() {
                        q = q.bind(v);
                    }
                    q.bind(r.traffic.gradient_seconds)
                        .bind(r.traffic.gradient_wait_seconds)
                        .bind(r.traffic.gradient_bytes as i64)
                        .bind(r.traffic.statistics_seconds)
                        .bind(r.traffic.statistics_wait_seconds)
                        .bind(r.traffic.statistics_bytes as i64)
                        .bind(r.traffic.inverse_seconds)
                        .bind(r.traffic.inverse_wait_seconds)
                        .bind(r.traffic.inverse_bytes as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            })
            .map_err(|e| self.sql(e))
    }

    pub fn write_epoch(&self, run: i64, e: &EpochRow) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO epochs (run_id, epoch, train_loss, train_accuracy, test_loss,
                 test_accuracy, wall_seconds, learning_rate, epoch_seconds, cpu_seconds,
                 load_average, validation_loss, validation_accuracy, probe_seconds)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run)
        .bind(e.epoch as i64)
        .bind(e.train_loss)
        .bind(e.train_accuracy)
        .bind(e.test_loss)
        .bind(e.test_accuracy)
        .bind(e.wall_seconds)
        .bind(e.learning_rate)
        .bind(e.epoch_seconds)
        .bind(e.cpu_seconds)
        .bind(e.load_average)
        .bind(e.validation_loss)
        .bind(e.validation_accuracy)
        .bind(e.probe_seconds);
        self.rt
            .block_on(q.execute(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Every run of sweep `name`, in creation order.
    pub fn runs(&self, sweep: &str) -> Result<Vec<RunRecord>> {
        let q = sqlx::query(
            "SELECT r.id, r.run_key, r.optimizer, r.samples, r.seed, r.status, r.error FROM runs r
             JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = ? ORDER BY r.id",
        )
        .bind(sweep);
        let rows = self
            .rt
            .block_on(q.fetch_all(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(rows.iter().map(record).collect())
    }

    /// The logged steps of a run, ascending.
    pub fn steps(&self, run: i64) -> Result<Vec<i64>> {
        let q = sqlx::query("SELECT step FROM iterations WHERE run_id = ? ORDER BY step").bind(run);
        let rows = self
            .rt
            .block_on(q.fetch_all(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The epoch rows of a run, ascending.
    pub fn epochs(&self, run: i64) -> Result<Vec<EpochRow>> {
        self.rt
            .block_on(fetch_epochs(&self.pool, run))
            .map_err(|e| self.sql(e))
    }
}

/// The epoch rows of a run, ascending (for callers already inside the runtime).
async fn fetch_epochs(pool: &SqlitePool, run: i64) -> sqlx::Result<Vec<EpochRow>> {
    let rows = sqlx::query(
        "SELECT epoch, train_loss, train_accuracy, test_loss, test_accuracy, wall_seconds,
             learning_rate, epoch_seconds, cpu_seconds, load_average, validation_loss,
             validation_accuracy, probe_seconds
         FROM epochs WHERE run_id = ? ORDER BY epoch",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| EpochRow {
            epoch: r.get::<i64, _>(0) as usize,
            train_loss: r.get(1),
            train_accuracy: r.get(2),
            test_loss: r.get(3),
            test_accuracy: r.get(4),
            wall_seconds: r.get(5),
            learning_rate: r.get(6),
            epoch_seconds: r.get(7),
            cpu_seconds: r.get(8),
            load_average: r.get(9),
            validation_loss: r.get(10),
            validation_accuracy: r.get(11),
            probe_seconds: r.get(12),
        })
        .collect())
}

fn record(r: &sqlx::sqlite::SqliteRow) -> RunRecord {
    RunRecord {
        id: r.get(0),
        run_key: r.get(1),
        optimizer: r.get(2),
        samples: r.get(3),
        seed: r.get(4),
        status: Status::parse(r.get::<&str, _>(5)),
        error: r.get(6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
