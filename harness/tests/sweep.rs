//! Sweeps: bad sweep files are refused before anything runs, naming file, line and the valid
//! choices; the store refuses a newer schema; a sweep killed with SIGKILL and started again
//! finishes every run exactly once, with no duplicate or missing rows, and the same numbers
//! as an uninterrupted sweep; each epoch records how busy the machine was.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::store::{Status, Store};
use harness::sweep;
use optimizers::OptimizerKind;

fn spec_err(text: &str) -> String {
    let e = sweep::parse(Path::new("sweeps/bad.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("sweeps/bad.toml:"), "{e}");
    e
}

const GOOD: &str = r#"
models = ["mlp"]
optimizers = ["sgd", "skfac-ss"]
samples = [1, 2]
seeds = [0, 1]
epochs = 2
target_accuracy = 0.8

[hyper]
lr = 0.05

[optimizer.skfac-ss]
damping = 0.3
"#;

#[test]
fn a_good_sweep_expands_its_grid() {
    let s = sweep::parse(Path::new("sweeps/demo.toml"), GOOD).unwrap();
    assert_eq!(s.name, "demo");
    assert_eq!(s.device, harness::device::DeviceSpec::Cpu);
    let on_gpu = sweep::parse(
        Path::new("sweeps/demo.toml"),
        &format!("device = \"cuda:1\"\n{GOOD}"),
    );
    assert_eq!(
        on_gpu.unwrap().device,
        harness::device::DeviceSpec::Cuda(Some(1))
    );
    // sgd × 2 seeds + skfac-ss × 2 sampling counts × 2 seeds.
    assert_eq!(s.runs.len(), 6);
    let ss: Vec<_> = s
        .runs
        .iter()
        .filter(|r| r.optimizer == OptimizerKind::SkfacSs)
        .collect();
    assert!(ss
        .iter()
        .all(|r| r.hyper.damping == 0.3 && r.hyper.lr == 0.05));
    assert_eq!(ss.iter().filter(|r| r.samples() == Some(2)).count(), 2);
    assert!(s
        .runs
        .iter()
        .all(|r| r.dataset == "fashion-mnist" && r.epochs == 2 && r.validation == 0));
    let held = sweep::parse(
        Path::new("sweeps/demo.toml"),
        &format!("validation = 500\n{GOOD}"),
    );
    assert!(held.unwrap().runs.iter().all(|r| r.validation == 500));
    let e = spec_err(&format!("validation = -1\n{GOOD}"));
    assert!(e.contains(":1:") && e.contains("`validation` = -1"), "{e}");
}

#[test]
fn unknown_names_give_the_line_and_the_valid_choices() {
    let e = spec_err(&GOOD.replace("[\"mlp\"]", "[\"mlp\", \"resnet9\"]"));
    assert!(
        e.contains(":2:") && e.contains("resnet9") && e.contains("resnet20"),
        "{e}"
    );
    let e = spec_err(&GOOD.replace("\"sgd\", ", "\"sdg\", "));
    assert!(
        e.contains(":3:") && e.contains("sdg") && e.contains("kfac-sua"),
        "{e}"
    );
    let e = spec_err(&format!("dataset = \"mnist\"\n{GOOD}"));
    assert!(e.contains(":1:") && e.contains("fashion-mnist"), "{e}");
    let e = spec_err(&format!("device = \"gpu\"\n{GOOD}"));
    assert!(
        e.contains(":1:") && e.contains("`device`") && e.contains("cuda:N"),
        "{e}"
    );
    let e = spec_err(&GOOD.replace("[optimizer.skfac-ss]", "[optimizer.kfac]"));
    assert!(
        e.contains(":12:") && e.contains("names no optimizer"),
        "{e}"
    );
}

#[test]
fn zero_or_negative_values_are_refused_with_the_rule() {
    let e = spec_err(&GOOD.replace("epochs = 2", "epochs = 0"));
    assert!(
        e.contains(":6:") && e.contains("epochs") && e.contains("at least 1"),
        "{e}"
    );
    let e = spec_err(&GOOD.replace("lr = 0.05", "lr = -0.05"));
    assert!(
        e.contains(":10:") && e.contains("lr") && e.contains("> 0"),
        "{e}"
    );
    let e = spec_err(&GOOD.replace("samples = [1, 2]", "samples = [1, 0]"));
    assert!(e.contains(":4:") && e.contains("samples"), "{e}");
    let e = spec_err(&GOOD.replace("damping = 0.3", "damping = 0.0"));
    assert!(e.contains(":13:") && e.contains("damping"), "{e}");
    let e = spec_err(&GOOD.replace("target_accuracy = 0.8", "target_accuracy = 80"));
    assert!(e.contains(":7:") && e.contains("(0, 1]"), "{e}");
}

#[test]
fn missing_fields_and_typos_are_refused() {
    let e = spec_err(&GOOD.replace("target_accuracy = 0.8\n", ""));
    assert!(e.contains("missing field `target_accuracy`"), "{e}");
    let e = spec_err(&GOOD.replace("lr = 0.05", "lrr = 0.05"));
    assert!(
        e.contains(":10:") && e.contains("lrr") && e.contains("`lr`"),
        "{e}"
    );
    let e = spec_err(&GOOD.replace("epochs = 2", "epoch = 2"));
    assert!(e.contains("epoch") && e.contains("`epochs`"), "{e}");
    let e = spec_err(&GOOD.replace("epochs = 2", "epochs = \"two\""));
    assert!(e.contains(":6:"), "{e}");
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    drop(Store::open(&db).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The schema and the applied migrations, as a newer skfac would see them.
    let snapshot = |extra: Option<&str>| -> Vec<String> {
        rt.block_on(async {
            use sqlx::{Connection, Row};
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            if let Some(sql) = extra {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            let mut out: Vec<String> =
                sqlx::query("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
            for r in
                sqlx::query("SELECT version, description FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
            {
                out.push(format!("{} {}", r.get::<i64, _>(0), r.get::<String, _>(1)));
            }
            out
        })
    };
    // Pretend a newer skfac applied migration 9999 and added a table.
    let before = snapshot(Some(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'future', 1, x'00', 0); CREATE TABLE future (x INTEGER)",
    ));
    let e = Store::open(&db).err().expect("refused").to_string();
    assert!(
        e.contains("newer skfac") && e.contains("9999") && e.contains("untouched"),
        "{e}"
    );
    assert!(before == snapshot(None), "the database was modified");
}

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

fn sweep_cmd(file: &Path, dir: &Path, db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_skfac"));
    c.args(["sweep"])
        .arg(file)
        .args(["--db"])
        .arg(dir.join(db))
        .args(["--data-dir"])
        .arg(dir.join("data"))
        .args(["--results"])
        .arg(dir.join(format!("results-{db}")))
        .args(["--threads", "2"]);
    c
}

#[test]
fn a_sweep_killed_mid_run_resumes_without_duplicates_or_gaps() {
    assert!(
        Path::new(FASHION).is_dir(),
        "{FASHION} is missing: run `bash scripts/setup.sh` (installs Debian's dataset-fashion-mnist)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(
        &file,
        r#"
models = ["mlp"]
optimizers = ["kfac", "sgd"]
seeds = [0, 1]
epochs = 3
train_subset = 3200
target_accuracy = 0.7
[hyper]
damping = 0.3
t_cov = 5
t_inv = 20
"#,
    )
    .unwrap();
    // Uninterrupted, for the numbers a resumed sweep must reproduce.
    let out = sweep_cmd(&file, dir.path(), "clean.db").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Killed with SIGKILL once the second run (id 2 in a fresh store) has checkpointed its
    // first epoch: its `latest` pointer exists only while it runs. Polling the file system is
    // cheap enough not to miss that window on a loaded machine.
    let mut child = sweep_cmd(&file, dir.path(), "killed.db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.path().join("killed.db");
    let latest = dir
        .path()
        .join("results-killed.db/checkpoints/small/2/latest");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !latest.exists() {
        assert!(
            Instant::now() < deadline,
            "the sweep never checkpointed its second run"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    {
        let s = Store::open(&db).unwrap();
        let runs = s.runs("small").unwrap();
        assert_eq!(runs[1].id, 2);
        assert_eq!(runs[1].status, Status::Running, "killed mid-run");
        assert!(!s.epochs(2).unwrap().is_empty(), "after its first epoch");
    }

    let out = sweep_cmd(&file, dir.path(), "killed.db").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    assert!(
        err.contains("resuming at step"),
        "the interrupted run restarted: {err}"
    );

    let (clean, killed) = (
        Store::open(&dir.path().join("clean.db")).unwrap(),
        Store::open(&db).unwrap(),
    );
    let (a, b) = (clean.runs("small").unwrap(), killed.runs("small").unwrap());
    assert_eq!(b.len(), 4, "each run exactly once");
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(rb.status, Status::Finished);
        assert_eq!(ra.run_key, rb.run_key);
        let steps = killed.steps(rb.id).unwrap();
        assert_eq!(
            steps,
            (0..300).collect::<Vec<i64>>(),
            "run {}: rows missing or repeated",
            rb.id
        );
        let (ea, eb) = (clean.epochs(ra.id).unwrap(), killed.epochs(rb.id).unwrap());
        assert_eq!(
            eb.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for (x, y) in ea.iter().zip(&eb) {
            assert_eq!(
                x.test_loss, y.test_loss,
                "run {}: resumed numbers differ",
                rb.id
            );
            assert_eq!(x.train_loss, y.train_loss);
        }
    }
    // Nothing is left to do: a third start skips every run.
    let out = sweep_cmd(&file, dir.path(), "killed.db").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 run(s) ran, 4 already done"));
}

#[test]
fn the_preset_sweeps_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeps");
    for (name, runs) in [
        ("cifar10", 9),
        ("cifar10-vgg11", 6),
        ("cifar10-paper", 18),
        ("fashion-mnist", 6),
        ("profile-demo", 12),
    ] {
        let s = sweep::load(&dir.join(format!("{name}.toml"))).unwrap();
        assert_eq!(s.name, name);
        assert_eq!(s.runs.len(), runs, "{name}");
    }
}

#[test]
fn without_a_terminal_a_sweep_logs_a_line_per_epoch_and_per_run() {
    assert!(Path::new(FASHION).is_dir(), "{FASHION} is missing");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.toml");
    std::fs::write(
        &file,
        "models = [\"mlp\"]\noptimizers = [\"sgd\", \"skfac-ss\"]\nsamples = [2]\nepochs = 2\n\
         train_subset = 320\ntarget_accuracy = 0.5\n[hyper]\ndamping = 0.3\n",
    )
    .unwrap();
    // Output goes to a pipe here, as with nohup, CI or `| tee log`.
    let out = sweep_cmd(&file, dir.path(), "lines.db").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for run in [
        "run 1/2 mlp sgd seed 0",
        "run 2/2 mlp skfac-ss (s'=2) seed 0",
    ] {
        for epoch in ["epoch 1/2, test acc", "epoch 2/2, test acc"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{run}: {epoch}")))
                .unwrap_or_else(|| panic!("no `{run}: {epoch}` line in:\n{text}"));
            assert!(
                line.contains("img/s") && line.contains("elapsed") && line.contains("left"),
                "{line}"
            );
        }
        assert!(
            text.contains(&format!("{run}: finished, test acc")),
            "{text}"
        );
    }
    // Each epoch stored how busy the machine was: the process's CPU seconds over the epoch's
    // wall seconds, at most every one of the 2 threads busy throughout (10% and 50 ms of
    // slack for the clocks' granularity), and on Linux the load average.
    let results = Store::open(&dir.path().join("lines.db"))
        .unwrap()
        .sweep_results("tiny")
        .unwrap()
        .unwrap();
    for r in &results.runs {
        assert_eq!(
            r.cores,
            std::thread::available_parallelism().ok().map(|n| n.get())
        );
        assert_eq!(r.epochs.len(), 2);
        for e in &r.epochs {
            let (cpu, wall) = (e.cpu_seconds.unwrap(), e.epoch_seconds.unwrap());
            assert!(
                cpu > 0.0 && cpu <= wall * 2.0 * 1.1 + 0.05,
                "{} epoch {}: {cpu} CPU s in {wall} s on 2 threads",
                r.optimizer,
                e.epoch
            );
            assert!(wall > 0.0 && wall <= e.wall_seconds);
            if cfg!(target_os = "linux") {
                assert!(e.load_average.is_some_and(|l| l >= 0.0), "{e:?}");
            }
        }
    }

    let out = sweep_cmd(&file, dir.path(), "quiet.db")
        .arg("--quiet")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("epoch 1/2"),
        "--quiet prints no epoch lines:\n{text}"
    );
    assert_eq!(text.matches(": finished, test acc").count(), 2, "{text}");
}

#[test]
fn runs_take_turns_by_epoch_and_end_as_they_would_one_after_another() {
    assert!(Path::new(FASHION).is_dir(), "{FASHION} is missing");
    let dir = tempfile::tempdir().unwrap();
    let grid = "models = [\"mlp\"]\noptimizers = [\"sgd\", \"kfac\"]\nepochs = 3\n\
                train_subset = 320\ntarget_accuracy = 0.5\n";
    let tail = "[hyper]\ndamping = 0.3\nt_cov = 2\nt_inv = 4\n";
    let mut lines = Vec::new();
    for (name, order) in [("turns", ""), ("inorder", "order = \"sequential\"\n")] {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, format!("{grid}{order}{tail}")).unwrap();
        let out = sweep_cmd(&file, dir.path(), &format!("{name}.db"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        // Which run trained each epoch, in the order they were logged.
        let order: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let (run, rest) = l.split_once(": epoch ")?;
                Some((run.to_string(), rest.split(',').next()?.to_string()))
            })
            .collect();
        lines.push(order);
    }
    let (sgd, kfac) = ("run 1/2 mlp sgd seed 0", "run 2/2 mlp kfac seed 0");
    let expect = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(r, e)| (r.to_string(), e.to_string()))
            .collect()
    };
    assert_eq!(
        lines[0],
        expect(&[
            (sgd, "1/3"),
            (kfac, "1/3"),
            (sgd, "2/3"),
            (kfac, "2/3"),
            (sgd, "3/3"),
            (kfac, "3/3")
        ]),
        "interleaved by default"
    );
    assert_eq!(
        lines[1],
        expect(&[
            (sgd, "1/3"),
            (sgd, "2/3"),
            (sgd, "3/3"),
            (kfac, "1/3"),
            (kfac, "2/3"),
            (kfac, "3/3")
        ]),
        "`order = \"sequential\"`"
    );
    // Each turn resumes from the epoch checkpoint bit-exactly: the same numbers either way,
    // and every epoch timed the speed probe.
    let results = |name: &str| {
        Store::open(&dir.path().join(format!("{name}.db")))
            .unwrap()
            .sweep_results(name)
            .unwrap()
            .unwrap()
    };
    let (turns, inorder) = (results("turns"), results("inorder"));
    for (a, b) in turns.runs.iter().zip(&inorder.runs) {
        assert_eq!(a.status, "finished");
        assert_eq!(a.optimizer, b.optimizer);
        assert_eq!(a.epochs.len(), 3);
        for (x, y) in a.epochs.iter().zip(&b.epochs) {
            assert_eq!(
                (x.test_loss, x.train_loss),
                (y.test_loss, y.train_loss),
                "{} epoch {}",
                a.optimizer,
                x.epoch
            );
            assert!(x.probe_seconds.is_some_and(|p| p > 0.0 && p < 5.0), "{x:?}");
        }
    }
}

#[test]
fn every_sweep_file_in_the_repository_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeps");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = sweep::parse(&path, &text) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 4, "found {seen} sweep files in {}", dir.display());
}

const SEARCHED: &str = r#"
models = ["mlp"]
optimizers = ["sgd", "adam", "skfac-ss"]
samples = [1, 2]
epochs = 3
validation = 500
target_accuracy = 0.8

[search]
trials = 4
epochs = 1
train_subset = 1000

[search.space]
lr = [0.01, 0.05]

[search.space.adam]
lr = [0.0003, 0.001, 0.003]

[search.space.skfac-ss]
damping = [0.03, 0.3, 1.0]
"#;

#[test]
fn a_search_gives_each_row_its_trials() {
    let s = sweep::parse(Path::new("sweeps/searched.toml"), SEARCHED).unwrap();
    let search = s.search.as_ref().unwrap();
    let labels: Vec<String> = search.rows.iter().map(|r| r.label()).collect();
    assert_eq!(
        labels,
        [
            "mlp sgd",
            "mlp adam",
            "mlp skfac-ss (s'=1)",
            "mlp skfac-ss (s'=2)"
        ]
    );
    let settings = |i: usize| -> Vec<&str> {
        search.rows[i]
            .trials
            .iter()
            .map(|t| t.setting.as_str())
            .collect()
    };
    assert_eq!(settings(0), ["lr 0.01", "lr 0.05"]);
    // Adam's own list replaces the shared one.
    assert_eq!(settings(1), ["lr 0.0003", "lr 0.001", "lr 0.003"]);
    // skfac-ss: 3 dampings × 2 rates = 6 settings, 4 of them tried, the same for each s'.
    assert_eq!(settings(2).len(), 4);
    assert_eq!(settings(2), settings(3));
    for row in &search.rows {
        for t in &row.trials {
            let c = &t.config;
            assert_eq!(
                (c.epochs, c.train_subset, c.validation),
                (1, Some(1000), 500)
            );
            assert_eq!(c.optimizer, row.optimizer);
        }
    }
    let adam = &search.rows[1].trials[2].config;
    assert_eq!(adam.hyper.lr, 0.003);
    let ss = &search.rows[3].trials[0];
    assert_eq!(ss.config.hyper.samples, 2);
    assert!(ss.setting.starts_with("damping "), "{}", ss.setting);
    // The timed runs keep the file's settings and budget until the picks.
    assert!(s
        .runs
        .iter()
        .all(|r| r.epochs == 3 && r.train_subset.is_none()));
    assert_eq!(s.runs.len(), 4);
}

#[test]
fn a_bad_search_is_refused_at_its_line() {
    let bad = |from: &str, to: &str| spec_err(&SEARCHED.replacen(from, to, 1));
    let e = bad("validation = 500\n", "");
    assert!(e.contains("`validation`") && e.contains(":9:"), "{e}");
    let e = bad("lr = [0.01, 0.05]", "lr = 0.01");
    assert!(e.contains(":15:") && e.contains("as a list"), "{e}");
    let e = bad("lr = [0.01, 0.05]", "lr = []");
    assert!(e.contains("is empty"), "{e}");
    let e = bad("lr = [0.01, 0.05]", "seed = [1, 2]");
    assert!(e.contains("`seed` cannot be set here"), "{e}");
    let e = bad("lr = [0.01, 0.05]", "lr = [0.01, -1.0]");
    assert!(e.contains(":15:") && e.contains("lr"), "{e}");
    let e = bad("[search.space.adam]", "[search.space.kfac]");
    assert!(
        e.contains("names no optimizer") && e.contains("adam"),
        "{e}"
    );
    let e = bad("trials = 4", "trials = 4\nselect = \"test-accuracy\"");
    assert!(e.contains("valid: validation-accuracy"), "{e}");
    let e = bad("epochs = 1\n", "epochs = 0\n");
    assert!(e.contains("`search.epochs` = 0"), "{e}");
}

#[test]
fn a_searched_sweep_times_each_row_at_its_best_trial_and_runs_the_search_once() {
    assert!(Path::new(FASHION).is_dir(), "{FASHION} is missing");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picked.toml");
    std::fs::write(
        &file,
        r#"
models = ["mlp"]
optimizers = ["sgd", "adam"]
epochs = 1
train_subset = 1600
validation = 500
target_accuracy = 0.5
[search]
trials = 2
epochs = 1
train_subset = 640
[search.space]
lr = [0.002, 0.3]
"#,
    )
    .unwrap();
    let out = sweep_cmd(&file, dir.path(), "runs.db").output().unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{text}{err}");
    let store = Store::open(&dir.path().join("runs.db")).unwrap();
    let trials = store.runs("picked:search").unwrap();
    let timed = store.runs("picked").unwrap();
    assert_eq!((trials.len(), timed.len()), (4, 2));
    let mut picks = Vec::new();
    for opt in ["sgd", "adam"] {
        // The trial with the best final validation accuracy, read back from the store.
        let best = trials
            .iter()
            .filter(|t| t.optimizer == opt && t.status == Status::Finished)
            .max_by(|a, b| {
                let acc = |r: &harness::store::RunRecord| {
                    store
                        .epochs(r.id)
                        .unwrap()
                        .last()
                        .unwrap()
                        .validation_accuracy
                        .unwrap()
                };
                acc(a).total_cmp(&acc(b))
            })
            .unwrap();
        let lr = |key: &str| {
            let v: serde_json::Value = serde_json::from_str(key).unwrap();
            v["lr"].as_f64().unwrap()
        };
        let run = timed.iter().find(|r| r.optimizer == opt).unwrap();
        assert_eq!(lr(&run.run_key), lr(&best.run_key), "{opt}: {err}");
        assert!(
            err.contains(&format!("search: mlp {opt} takes lr {}", lr(&best.run_key))),
            "{err}"
        );
        assert_eq!(store.epochs(run.id).unwrap().len(), 1);
        picks.push((opt, lr(&best.run_key)));
    }
    // The report shows every trial with the picks marked, and each timed row's setting; the
    // trials' own sweep gets no report of its own.
    let reports = dir.path().join("reports");
    let out = Command::new(env!("CARGO_BIN_EXE_skfac"))
        .args(["report", "--db"])
        .arg(dir.path().join("runs.db"))
        .arg("--out")
        .arg(&reports)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!reports.join("picked:search").exists());
    let md = std::fs::read_to_string(reports.join("picked/report.md")).unwrap();
    assert!(
        md.contains("Search") && md.matches("✓").count() == 2,
        "{md}"
    );
    let table = std::fs::read_to_string(reports.join("picked/time-to-target.md")).unwrap();
    assert!(table.contains("setting (searched)"), "{table}");
    for (opt, lr) in picks {
        let title = if opt == "sgd" { "SGD" } else { "Adam" };
        assert!(
            md.contains(&format!("| {title} | lr {lr} | finished |")),
            "{md}"
        );
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {title} |")))
            .unwrap();
        assert!(row.ends_with(&format!("| lr {lr} |")), "{table}");
    }
    // Started again, neither the search nor the timed runs run again.
    let out = sweep_cmd(&file, dir.path(), "runs.db").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 run(s) ran, 6 already done"), "{text}");
}
