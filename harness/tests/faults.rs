//! Faults survived: repeated SIGKILLs of a `--jobs 2` sweep (the whole process group, or the
//! main process alone, whose workers must die with it), SIGTERM, damaged checkpoints, a full
//! disk, two sweeps on one store, a store that is read-only, locked or not SQLite, and a run
//! that diverges mid-sweep. After each, nothing finished is lost, nothing is counted twice, and
//! the final numbers equal an uninterrupted sweep's bit for bit.
//!
//! `just soak` runs the long version of the kill test (`soak`, ignored here) and prints its
//! figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::store::{Status, Store};
use rand::{Rng, SeedableRng};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// Four runs of the MLP, 150 steps each; K-FAC's state makes the checkpoints non-trivial.
const SWEEP: &str = r#"
models = ["mlp"]
optimizers = ["kfac", "sgd"]
seeds = [0, 1]
epochs = 3
train_subset = 1600
target_accuracy = 0.7
[hyper]
damping = 0.3
t_cov = 5
t_inv = 20
"#;

/// Steps of every run of [`SWEEP`] and [`ONE`]: 3 epochs of 1,600 images in batches of 32.
const STEPS: usize = 150;

struct Bench {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Bench {
    fn new(spec: &'static str) -> Bench {
        assert!(
            Path::new(FASHION).is_dir(),
            "{FASHION} is missing: run `bash scripts/setup.sh`"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faults.toml");
        std::fs::write(&file, spec).unwrap();
        Bench { dir, file }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `skfac sweep` into store `db` with results under `results-DB` (or `results`).
    fn sweep(&self, db: &Path, results: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_skfac"));
        c.arg("sweep")
            .arg(&self.file)
            .arg("--db")
            .arg(db)
            .arg("--data-dir")
            .arg(self.path("data"))
            .arg("--results")
            .arg(results)
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    /// Runs a one-thread sweep to its end, which must be a success; its messages.
    fn finish(&self, db: &Path, results: &Path) -> String {
        let out = self
            .sweep(db, results, &["--threads", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    }

    /// Starts a one-thread sweep and sends it `sig` as soon as `path` exists; its exit status.
    fn stop_when(
        &self,
        db: &Path,
        results: &Path,
        path: &Path,
        sig: i32,
    ) -> std::process::ExitStatus {
        let mut child = self
            .sweep(db, results, &["--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !path.exists() {
            assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        signal(child.id() as i32, sig);
        child.wait().unwrap()
    }

    /// The messages of every attempt up to `last` of a kill campaign.
    fn logs(&self, last: usize) -> String {
        (0..=last)
            .map(|i| {
                let text = std::fs::read_to_string(self.path(&format!("attempt-{i}.log")));
                format!("--- attempt {i}:\n{}", text.unwrap_or_default())
            })
            .collect()
    }

    /// Runs a sweep to the end, uninterrupted, into `db`.
    fn clean(&self, db: &str, extra: &[&str]) -> PathBuf {
        let db = self.path(db);
        let out = self
            .sweep(&db, &self.path("results-clean"), extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }
}

/// Each run's epoch metrics by run key (wall-clock left out: it differs between runs).
type Finals = BTreeMap<String, Vec<(u64, u64, u64, u64)>>;

/// The numbers of an uninterrupted sweep of `spec` with `threads` threads per run, computed
/// once per spec for all the tests that compare with them.
fn clean(spec: &'static str, runs: usize) -> Finals {
    static CACHE: std::sync::Mutex<BTreeMap<&'static str, Finals>> =
        std::sync::Mutex::new(BTreeMap::new());
    if let Some(f) = CACHE.lock().unwrap().get(spec) {
        return f.clone();
    }
    let b = Bench::new(spec);
    let db = b.clean("clean.db", &["--threads", "1"]);
    let (finals, _) = check_store(&db, runs, steps_of(spec), 3);
    CACHE.lock().unwrap().insert(spec, finals.clone());
    finals
}

/// Checks that every run of `db` finished once with every step and epoch row once, and
/// returns the epoch metrics; also the row count checked.
fn check_store(db: &Path, runs: usize, steps: usize, epochs: usize) -> (Finals, usize) {
    let s = Store::open(db).unwrap();
    let all = s.runs("faults").unwrap();
    assert_eq!(all.len(), runs, "each run exactly once");
    let mut finals = Finals::new();
    let mut rows = 0;
    for r in &all {
        assert_eq!(r.status, Status::Finished, "run {} ({:?})", r.id, r.error);
        let got = s.steps(r.id).unwrap();
        assert_eq!(
            got,
            (0..steps as i64).collect::<Vec<_>>(),
            "run {}: every step once",
            r.id
        );
        let e = s.epochs(r.id).unwrap();
        let numbers: Vec<usize> = e.iter().map(|e| e.epoch).collect();
        assert_eq!(
            numbers,
            (1..=epochs).collect::<Vec<_>>(),
            "run {}: every epoch once",
            r.id
        );
        rows += got.len() + e.len();
        let bits = e
            .iter()
            .map(|e| {
                let b = |x: f64| x.to_bits();
                (
                    b(e.train_loss),
                    b(e.train_accuracy),
                    b(e.test_loss),
                    b(e.test_accuracy),
                )
            })
            .collect();
        finals.insert(r.run_key.clone(), bits);
    }
    (finals, rows)
}

/// Pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&pid.to_string()) {
            out.extend(
                entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// What a kill campaign survived.
#[derive(Debug, Default)]
struct Campaign {
    kills: usize,
    main_only: usize,
    sigterms: usize,
    /// Seconds of training since the newest checkpoint at the moment of a kill, the most.
    longest_redo: f64,
}

/// The newest checkpoint time of every run in `results`, or `since` where a run has none.
fn redo_seconds(results: &Path, since: Instant, now: Instant) -> f64 {
    let started = now.duration_since(since).as_secs_f64();
    let mut worst: f64 = 0.0;
    let Ok(sweeps) = std::fs::read_dir(results.join("checkpoints/faults")) else {
        return started;
    };
    for run in sweeps.flatten() {
        let latest = run.path().join("latest");
        let age = std::fs::metadata(&latest)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or(started, |d| d.as_secs_f64().min(started));
        worst = worst.max(age);
    }
    worst
}

/// Starts the sweep over and over, killing it `kills` times at random moments (the whole
/// process group, the main process alone, or SIGTERM), then lets it finish.
fn kill_repeatedly(
    b: &Bench,
    db: &Path,
    results: &Path,
    kills: usize,
    window_ms: u64,
    seed: u64,
) -> Campaign {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut c = Campaign::default();
    for attempt in 0.. {
        assert!(attempt < kills + 20, "the sweep never finished");
        let mut cmd = b.sweep(db, results, &["--jobs", "2", "--threads", "1"]);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // Each attempt's messages go to a file of its own (a pipe nobody reads could fill).
        let log = std::fs::File::create(b.path(&format!("attempt-{attempt}.log"))).unwrap();
        let mut child: Child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let started = Instant::now();
        if c.kills == kills {
            let status = child.wait().unwrap();
            assert!(status.success(), "{}", b.logs(attempt));
            return c;
        }
        let wait = Duration::from_millis(rng.random_range(window_ms / 5..window_ms));
        let deadline = started + wait;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_some() {
            // Finished before the kill came: a clean end counts as none.
            let status = child.wait().unwrap();
            assert!(status.success(), "the sweep failed on its own");
            return c;
        }
        let pid = child.id();
        c.longest_redo = c
            .longest_redo
            .max(redo_seconds(results, started, Instant::now()));
        match c.kills % 3 {
            0 => signal(-(pid as i32), libc::SIGKILL),
            1 => {
                let workers = children(pid);
                signal(pid as i32, libc::SIGKILL);
                let until = Instant::now() + Duration::from_secs(10);
                while workers.iter().any(|&w| alive(w)) {
                    assert!(
                        Instant::now() < until,
                        "workers {workers:?} outlived their sweep"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                c.main_only += 1;
            }
            _ => {
                signal(pid as i32, libc::SIGTERM);
                let status = child.wait().unwrap();
                // Exit 130 after the workers checkpointed; or a run that just finished.
                assert!(
                    status.code() == Some(130) || status.success(),
                    "SIGTERM: {status:?} {}",
                    b.logs(attempt)
                );
                c.sigterms += 1;
                c.kills += 1;
                continue;
            }
        }
        child.wait().unwrap();
        c.kills += 1;
    }
    unreachable!()
}

fn campaign(
    spec: &'static str,
    kills: usize,
    window_ms: u64,
    seed: u64,
) -> (Campaign, usize, usize) {
    let b = Bench::new(spec);
    let want = clean(spec, 4);
    let db = b.path("killed.db");
    let c = kill_repeatedly(&b, &db, &b.path("results-killed"), kills, window_ms, seed);
    let checked = std::panic::catch_unwind(|| check_store(&db, 4, steps_of(spec), 3));
    let (got, rows) = checked.unwrap_or_else(|_| {
        let runs = Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\nfor r in sqlite3.connect(sys.argv[1]).execute('SELECT id, run_key, status, lease_owner, lease_until, (SELECT COUNT(*) FROM iterations i WHERE i.run_id = runs.id) FROM runs'): print(r)",
            ])
            .arg(&db)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        panic!("after {c:?}:\n{runs}\n{}", b.logs(c.kills + 20))
    });
    assert_eq!(
        got, want,
        "the final epochs equal an uninterrupted sweep's bit for bit"
    );
    (c, 4, rows)
}

#[test]
fn a_jobs_sweep_killed_repeatedly_finishes_every_run_once_with_the_same_numbers() {
    let (c, _, _) = campaign(SWEEP, 3, 1500, 7);
    assert!(c.kills == 3 && c.main_only == 1 && c.sigterms == 1, "{c:?}");
}

/// The soak's sweep: [`SWEEP`] at twice the images, so a kill lands mid-run more often.
fn soak_spec() -> &'static str {
    static SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| SWEEP.replace("train_subset = 1600", "train_subset = 3200"))
}

/// Steps per run of a sweep of this file.
fn steps_of(spec: &str) -> usize {
    if spec == soak_spec() {
        2 * STEPS
    } else {
        STEPS
    }
}

/// The long version, for `just soak`: at least 20 kills; prints the figures.
#[test]
#[ignore]
fn soak() {
    let kills: usize = std::env::var("SOAK_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    let t = Instant::now();
    let (c, runs, rows) = campaign(soak_spec(), kills, 4000, 20_261_130);
    println!(
        "soak: {} kills survived ({} of the main process alone, {} SIGTERM), {runs} runs finished, \
         {rows} rows checked, 0 rows lost, 0 duplicates, longest work redone after a kill {:.1} s, \
         {:.0} s in all",
        c.kills,
        c.main_only,
        c.sigterms,
        c.longest_redo,
        t.elapsed().as_secs_f64()
    );
}

/// A one-run sweep, for the faults that need no grid.
const ONE: &str = r#"
models = ["mlp"]
optimizers = ["sgd"]
epochs = 3
train_subset = 1600
target_accuracy = 0.7
"#;

#[test]
fn a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before() {
    let b = Bench::new(ONE);
    let want = clean(ONE, 1);
    let (db, results) = (b.path("damaged.db"), b.path("results-damaged"));
    let ckpt = results.join("checkpoints/faults/1");
    // Stopped (SIGTERM) after its second epoch's checkpoint: two checkpoints are kept.
    let stopped = b.stop_when(&db, &results, &ckpt.join("step-000000100"), libc::SIGTERM);
    assert_eq!(stopped.code(), Some(130));
    let pointer = std::fs::read_to_string(ckpt.join("latest")).unwrap();
    let newest = ckpt.join(pointer.trim());
    // The one kept before it (SIGTERM may have come a step after the epoch's checkpoint).
    let previous: usize = std::fs::read_dir(&ckpt)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
        .filter(|s| ckpt.join(format!("step-{s:09}")) != newest)
        .max()
        .expect("two checkpoints kept");
    // Truncate the newest model file.
    let model = newest.join("model.safetensors");
    let len = std::fs::metadata(&model).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = b.finish(&db, &results);
    assert!(
        err.contains("is damaged") && err.contains("model.safetensors"),
        "{err}"
    );
    assert!(
        err.contains(&format!("resuming at step {previous}")),
        "{err}"
    );
    assert_eq!(
        check_store(&db, 1, STEPS, 3).0,
        want,
        "the same numbers as uninterrupted"
    );
}

#[test]
fn flipped_bytes_and_a_dangling_pointer_are_caught_and_the_run_restarts() {
    let b = Bench::new(ONE);
    let want = clean(ONE, 1);
    let (db, results) = (b.path("flipped.db"), b.path("results-flipped"));
    let ckpt = results.join("checkpoints/faults/1");
    b.stop_when(&db, &results, &ckpt.join("latest"), libc::SIGKILL);
    // Flip bytes in the middle of every checkpoint's optimizer state, then point `latest`
    // at a folder that does not exist.
    for entry in std::fs::read_dir(&ckpt).unwrap().flatten() {
        let f = entry.path().join("optimizer.safetensors");
        if let Ok(mut bytes) = std::fs::read(&f) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&f, bytes).unwrap();
        }
    }
    std::fs::write(ckpt.join("latest"), "step-000009999").unwrap();
    let err = b.finish(&db, &results);
    assert!(err.contains("which is missing"), "{err}");
    assert!(err.contains("does not match its checksum"), "{err}");
    assert!(err.contains("starting the run again"), "{err}");
    assert_eq!(
        check_store(&db, 1, STEPS, 3).0,
        want,
        "the same numbers as uninterrupted"
    );
}

/// Mounts a tmpfs of `mb` MiB at `dir` (root only); `false` where mounting is not allowed.
fn mount_tmpfs(dir: &Path, mb: usize) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_ends_the_sweep_with_the_path_and_it_resumes_once_space_is_back() {
    let b = Bench::new(ONE);
    let want = clean(ONE, 1);
    let small = b.path("small");
    // One SGD checkpoint of the MLP is about 4.3 MB: 11 MiB holds the store and two, not three.
    if !mount_tmpfs(&small, 11) {
        assert!(
            unsafe { libc::geteuid() } != 0,
            "running as root but cannot mount a tmpfs for the full-disk test"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _unmount = Unmount(small.clone());
    let (db, results) = (small.join("runs.db"), small.join("results"));
    let out = b
        .sweep(&db, &results, &["--threads", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the disk was not full enough: {err}");
    assert!(
        err.contains("disk is full") && err.contains(&small.display().to_string()),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The store still opens, with the run unfinished; the last checkpoint is intact.
    let s = Store::open(&db).unwrap();
    let runs = s.runs("faults").unwrap();
    assert!(
        runs.iter().all(|r| r.status != Status::Finished),
        "{runs:?}"
    );
    drop(s);
    let remount = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(remount.success());
    let err = b.finish(&db, &results);
    assert!(err.contains("resuming at step"), "{err}");
    assert_eq!(
        check_store(&db, 1, STEPS, 3).0,
        want,
        "the same numbers as uninterrupted"
    );
}

#[test]
fn two_sweeps_on_one_store_split_the_runs_and_take_over_from_a_crashed_one() {
    let b = Bench::new(SWEEP);
    let want = clean(SWEEP, 4);
    let (db, results) = (b.path("shared.db"), b.path("results-shared"));
    let lease = ["--threads", "1", "--lease-seconds", "4"];
    // Two by hand at once: every run is trained by exactly one of them.
    let a = b
        .sweep(&db, &results, &lease)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = b
        .sweep(&db, &results, &lease)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, c) = (a.wait_with_output().unwrap(), c.wait_with_output().unwrap());
    let ran = |o: &std::process::Output| {
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.contains("run(s) ran"))
            .expect("a summary")
            .to_string();
        line.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(ran(&a) + ran(&c), 4, "each run trained once");
    let (got, _) = check_store(&db, 4, STEPS, 3);
    assert_eq!(got, want);

    // One of two crashes mid-run: the other takes its run over when the lease lapses.
    let (db, results) = (b.path("takeover.db"), b.path("results-takeover"));
    let mut crashing = b
        .sweep(&db, &results, &lease)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let other = b
        .sweep(&db, &results, &lease)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal(crashing.id() as i32, libc::SIGKILL);
    crashing.wait().unwrap();
    let out = other.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (got, _) = check_store(&db, 4, STEPS, 3);
    assert_eq!(got, want);
}

#[test]
fn a_store_that_is_not_sqlite_read_only_or_locked_is_named_with_the_fix() {
    let b = Bench::new(ONE);
    let results = b.path("results");
    let run = |db: &Path, env: Option<(&str, &str)>, uid: Option<u32>| {
        let mut c = b.sweep(db, &results, &["--threads", "1"]);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        if let Some(uid) = uid {
            std::os::unix::process::CommandExt::uid(&mut c, uid);
        }
        let out = c.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !err.contains("panicked") && err.contains(&db.display().to_string()),
            "{err}"
        );
        err
    };
    let text = b.path("notes.db");
    std::fs::write(&text, "not a database, a note\n".repeat(200)).unwrap();
    let err = run(&text, None, None);
    assert!(
        err.contains("not an SQLite database") && err.contains("--db"),
        "{err}"
    );
    assert_eq!(
        err.matches("file is not a database").count(),
        1,
        "said once: {err}"
    );

    // Read-only: for root, as another user (root ignores permission bits).
    let ro_dir = b.path("ro");
    std::fs::create_dir_all(&ro_dir).unwrap();
    let ro = ro_dir.join("runs.db");
    Store::open(&ro).unwrap();
    for p in [&ro, &ro_dir] {
        let mode = if p.is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    // SAFETY: geteuid has no side effects.
    let uid = (unsafe { libc::geteuid() } == 0).then_some(65_534);
    if uid.is_some() {
        // The other user must reach the folders on the way.
        let mut d = b.dir.path().to_path_buf();
        while d != Path::new("/") {
            let m = std::fs::metadata(&d).unwrap().permissions();
            let mode = std::os::unix::fs::PermissionsExt::mode(&m) | 0o005;
            std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            if !d.pop() {
                break;
            }
        }
    }
    let err = run(&ro, None, uid);
    assert!(
        err.contains("read-only") && err.contains("writable"),
        "{err}"
    );

    // Locked past the busy timeout by another process holding a write transaction.
    let locked = b.path("locked.db");
    Store::open(&locked).unwrap();
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)",
        ])
        .arg(&locked)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let err = run(&locked, Some(("SKFAC_BUSY_SECONDS", "1")), None);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        err.contains("locked by another process") && err.contains("again"),
        "{err}"
    );
}

#[test]
fn a_run_that_diverges_mid_sweep_is_recorded_with_its_step_and_the_sweep_goes_on() {
    let b = Bench::new(
        r#"
models = ["mlp"]
optimizers = ["sgd", "adam"]
epochs = 1
train_subset = 640
target_accuracy = 0.5
[optimizer.sgd]
lr = 1e12
schedule = "constant"
"#,
    );
    let db = b.path("diverge.db");
    let out = b
        .sweep(&db, &b.path("results"), &["--threads", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Store::open(&db).unwrap();
    let runs = s.runs("faults").unwrap();
    assert_eq!(runs[0].status, Status::Diverged);
    assert!(
        runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("diverged at step")),
        "{runs:?}"
    );
    assert_eq!(runs[1].status, Status::Finished, "the sweep went on");
}
