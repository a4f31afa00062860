//! The speed probe sees a machine slowed halfway through a sweep, and the report names the
//! slowed epochs. A test file of its own: its quiet epochs must not share the CPUs with
//! other tests.

mod common;
use common::skfac;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::store::Store;

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// Processes that keep every CPU busy until dropped.
struct Spinners(Vec<Child>);

impl Spinners {
    fn start(n: usize) -> Spinners {
        Spinners(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("sh runs")
                })
                .collect(),
        )
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Renices every thread of process `pid` to 5 (threads it starts later inherit it).
fn lower_priority(pid: u32) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc is mounted") {
        let tid = task.unwrap().file_name();
        let ok = Command::new("renice")
            .args(["-n", "5", "-p"])
            .arg(&tid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("renice runs");
        // A thread may end between the listing and its renice.
        let gone = !Path::new(&format!("/proc/{pid}/task")).join(&tid).exists();
        assert!(ok.success() || gone, "renice of thread {tid:?} failed");
    }
}

#[test]
fn a_machine_slowed_halfway_moves_the_probe_and_the_report_flags_those_epochs() {
    assert!(Path::new(FASHION).is_dir(), "{FASHION} is missing");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slowed.toml");
    std::fs::write(
        &file,
        "models = [\"mlp\"]\noptimizers = [\"sgd\"]\nepochs = 8\ntrain_subset = 640\n\
         target_accuracy = 0.99\n",
    )
    .unwrap();
    let db = dir.path().join("runs.db");
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_skfac"))
        .arg("sweep")
        .arg(&file)
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .args(["--threads", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // After the fifth epoch, four busy processes per CPU, and the sweep's threads niced below
    // them: the probe's thread gets a small fraction of a core from then on (at equal
    // priority, a thread waking from sleep is scheduled ahead of the spinners for a few
    // milliseconds, a good part of a 10 ms probe, and one probe came out only 1.6 times
    // slower). The sixth epoch's probe may run before they start.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(300);
    let epochs_done = || {
        Store::open(&db)
            .ok()
            .and_then(|s| s.runs("slowed").ok())
            .and_then(|r| r.first().map(|r| r.id))
            .and_then(|id| Store::open(&db).ok()?.epochs(id).ok())
            .map_or(0, |e| e.len())
    };
    while epochs_done() < 5 {
        assert!(Instant::now() < deadline, "the sweep never reached epoch 5");
        assert!(sweep.try_wait().unwrap().is_none(), "the sweep ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    let spinners = Spinners::start(4 * cores);
    lower_priority(sweep.id());
    assert!(sweep.wait().unwrap().success());
    drop(spinners);

    let store = Store::open(&db).unwrap();
    let run = store.runs("slowed").unwrap()[0].id;
    let probes: Vec<f64> = store
        .epochs(run)
        .unwrap()
        .iter()
        .map(|e| e.probe_seconds.expect("every epoch timed its probe"))
        .collect();
    assert_eq!(probes.len(), 8);
    let quiet = probes[..5].iter().cloned().fold(0.0, f64::max);
    let slowed = probes[6..].iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        slowed > 1.5 * quiet,
        "the probe did not move: {probes:?} (seconds per epoch)"
    );

    let out = dir.path().join("report");
    let (ok, text) = skfac(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--sweep",
        "slowed",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let md = std::fs::read_to_string(out.join("time-to-target.md")).unwrap();
    for e in 7..=8 {
        assert!(md.contains(&format!("SGD seed 0 epoch {e} (")), "{md}");
    }
    for e in 1..=5 {
        assert!(!md.contains(&format!("SGD seed 0 epoch {e} (")), "{md}");
    }
    assert!(md.contains("| SGD | not reached | not reached † |"), "{md}");
}
