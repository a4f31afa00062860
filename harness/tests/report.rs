//! `skfac report`, `skfac bench-gains` and `skfac regress` on databases with known rows.

mod common;
use common::skfac;
use std::path::Path;
use std::process::Command;

use harness::store::{EpochRow, IterationRow, RunMeta, Status, Store};
use harness::train::StepTimes;
use reports::regress::{BenchRecord, BenchStage, FORMER_KFAC, PEERS};

fn meta(optimizer: &str, seed: u64) -> RunMeta {
    RunMeta {
        run_key: format!("{optimizer}-{seed}"),
        model: "mlp".into(),
        dataset: "fashion-mnist".into(),
        optimizer: optimizer.parse().unwrap(),
        samples: None,
        seed,
        hyper_json: "{}".into(),
        git_commit: "feedbeef".into(),
        crate_versions: "{}".into(),
        cpu_model: "Known CPU".into(),
        device: "cpu".into(),
        threads: 2,
        cores: 2,
        processes: 1,
        comm_strategy: "none".into(),
    }
}

/// Two epochs per run; `acc`, `secs`, the load average `load` and the speed probe's seconds
/// `probe` per epoch; every step 10 ms forward, `inv` inverse.
#[allow(clippy::too_many_arguments)]
fn add_run(
    store: &Store,
    sweep: i64,
    optimizer: &str,
    acc: [f64; 2],
    secs: [f64; 2],
    load: [Option<f64>; 2],
    probe: [Option<f64>; 2],
    inv: f64,
) {
    let run = store
        .start_run(Some(sweep), &meta(optimizer, 0))
        .unwrap()
        .expect("a new run");
    let rows: Vec<IterationRow> = (0..4)
        .map(|step| IterationRow {
            step,
            epoch: step / 2,
            loss: 1.0,
            lr: 0.1,
            times: StepTimes {
                forward: 0.010,
                inverse: inv,
                ..StepTimes::default()
            },
            traffic: Default::default(),
        })
        .collect();
    store.write_iterations(run, &rows).unwrap();
    for e in 0..2 {
        store
            .write_epoch(
                run,
                &EpochRow {
                    epoch: e + 1,
                    train_loss: 1.0 - acc[e],
                    train_accuracy: acc[e],
                    test_loss: 1.1 - acc[e],
                    test_accuracy: acc[e],
                    wall_seconds: secs[e],
                    learning_rate: 0.1,
                    epoch_seconds: load[e].map(|_| secs[0]),
                    cpu_seconds: load[e].map(|_| secs[0]),
                    load_average: load[e],
                    // K-FAC alone held out a validation split, 1% below its test accuracy.
                    validation_loss: (optimizer == "kfac").then_some(1.2 - acc[e]),
                    validation_accuracy: (optimizer == "kfac").then_some(acc[e] - 0.01),
                    probe_seconds: probe[e],
                },
            )
            .unwrap();
    }
    store.end_run(run, Status::Finished, None).unwrap();
}

#[test]
fn report_reads_the_store_and_writes_the_known_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    {
        let store = Store::open(&db).unwrap();
        let sweep = store
            .sweep("known", "sweeps/known.toml", "", Some(0.8))
            .unwrap();
        // SGD's first epoch ran at a load average of 3.9 on 2 cores: busy; K-FAC's second, busy
        // too, comes after its target epoch; SKFAC-RS's rows predate load recording, and its
        // second epoch's speed probe took twice the median (20 ms) of the five probes: slowed.
        let (busy, quiet) = (Some(3.9), Some(1.2));
        let ms = |x: f64| Some(x / 1e3);
        for (optimizer, acc, secs, load, probe, inv) in [
            (
                "sgd",
                [0.70, 0.82],
                [30.0, 60.0],
                [busy, quiet],
                [ms(20.0), ms(20.0)],
                0.0,
            ),
            (
                "kfac",
                [0.81, 0.85],
                [48.0, 96.0],
                [quiet, busy],
                [ms(21.0), ms(19.0)],
                0.030,
            ),
            (
                "skfac-rs",
                [0.75, 0.79],
                [36.0, 72.0],
                [None; 2],
                [None, ms(40.0)],
                0.001,
            ),
        ] {
            add_run(&store, sweep, optimizer, acc, secs, load, probe, inv);
        }
    }
    let out = dir.path().join("report");
    let (ok, text) = skfac(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--sweep",
        "known",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let md = std::fs::read_to_string(out.join("time-to-target.md")).unwrap();
    // SGD: epoch 2 at 60 s = 1 min; K-FAC: epoch 1 at 48 s = 0.8 min; 1 / 0.8 - 1 = +25%.
    let sgd = "| SGD | 2 | 1.00 † | +25.00% | 82.00% | — |";
    assert!(md.contains(sgd), "{md}");
    assert!(
        md.contains("† SGD: timed on a busy or slowed machine (load average 3.9 on 2 cores during its epochs): its time is not comparable."),
        "{md}"
    );
    assert!(
        md.contains("† SKFAC-RS: timed on a busy or slowed machine (1 epoch slowed (speed probe up to 2.00× the median) during its epochs)"),
        "{md}"
    );
    assert!(
        md.contains("took 20.0 ms (median over this workload's epochs)")
            && md.contains("flagged: SKFAC-RS seed 0 epoch 2 (2.00×)."),
        "{md}"
    );
    assert_eq!(md.matches('†').count(), 4, "{md}");
    let csv = std::fs::read_to_string(out.join("time-to-target.csv")).unwrap();
    // Each epoch's CPU seconds equal its wall seconds on 2 threads: a share of 0.5.
    for (row, end) in [
        (",SGD,", ",true,3.9,0.5,,0"),
        (",K-FAC,", ",false,1.2,0.5,0.84,0"),
        (",SKFAC-RS,", ",false,,,,1"),
    ] {
        let line = csv.lines().find(|l| l.contains(row)).unwrap();
        assert!(line.ends_with(end), "{csv}");
    }
    // The validation accuracy went through the store: K-FAC's last epoch, 85% - 1%.
    assert!(
        md.contains("| K-FAC | 1 | 0.80 | 0% | 85.00% | 84.00% |"),
        "{md}"
    );
    assert!(
        md.contains("| SKFAC-RS | not reached | not reached † | — | 79.00% |"),
        "{md}"
    );
    let stages = std::fs::read_to_string(out.join("stage-times.csv")).unwrap();
    assert!(
        stages.contains("mlp,fashion-mnist,kfac,K-FAC,4,0.01,0,0,0.03,0,0,0,0.04"),
        "{stages}"
    );
    for f in [
        "convergence-epochs.png",
        "convergence-time.svg",
        "stage-times.png",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // One workload makes no performance profile; a second sweep of another model does.
    assert!(!out.join("performance-profile").exists());
    {
        let store = Store::open(&db).unwrap();
        let sweep = store
            .sweep("other", "sweeps/other.toml", "", Some(0.8))
            .unwrap();
        // ResNet-8 to 80%: SGD in 1 min, K-FAC in 2.
        for (optimizer, minutes) in [("sgd", 1.0), ("kfac", 2.0)] {
            let mut m = meta(optimizer, 0);
            (m.model, m.dataset) = ("resnet8".into(), "cifar10".into());
            let run = store.start_run(Some(sweep), &m).unwrap().unwrap();
            let row = EpochRow {
                epoch: 1,
                train_loss: 0.5,
                train_accuracy: 0.9,
                test_loss: 0.5,
                test_accuracy: 0.9,
                wall_seconds: 60.0 * minutes,
                learning_rate: 0.1,
                epoch_seconds: None,
                cpu_seconds: None,
                load_average: None,
                validation_loss: None,
                validation_accuracy: None,
                probe_seconds: None,
            };
            store.write_epoch(run, &row).unwrap();
            store.end_run(run, Status::Finished, None).unwrap();
        }
    }
    let all = dir.path().join("all");
    let (ok, text) = skfac(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        all.to_str().unwrap(),
    ]);
    assert!(ok && text.contains("performance profile"), "{text}");
    let md = std::fs::read_to_string(all.join("performance-profile/profile.md")).unwrap();
    // MLP: K-FAC fastest (0.8 min), SGD 1.25x; ResNet-8: SGD fastest, K-FAC 2x.
    for line in [
        "| optimizer | MLP on Fashion-MNIST | ResNet-8 on CIFAR-10 |",
        "| SGD | 1.25 | 1.00 |",
        "| K-FAC | 1.00 | 2.00 |",
        "| SKFAC-RS | not reached | not reached |",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }

    let (ok, text) = skfac(&["report", "--db", db.to_str().unwrap(), "--sweep", "nope"]);
    assert!(
        !ok && text.contains("no sweep named `nope`") && text.contains("known"),
        "{text}"
    );
    let missing = dir.path().join("missing.db");
    let (ok, text) = skfac(&["report", "--db", missing.to_str().unwrap()]);
    assert!(!ok && text.contains("no such database"), "{text}");
    assert!(
        !missing.exists(),
        "a typo'd --db must not create a database"
    );
}

fn record(commit: &str, skfac_inverse: f64) -> BenchRecord {
    let stage = |o: &str, inv: f64| {
        let optimizer: optimizers::OptimizerKind = o.parse().unwrap();
        BenchStage {
            optimizer,
            samples: None,
            kfac: (o == "kfac").then_some(FORMER_KFAC),
            failed_refreshes: 0,
            seconds: [0.010, 0.020, 0.002, inv, 0.001, 0.0, 0.001],
        }
    };
    BenchRecord {
        id: 0,
        created_at: String::new(),
        git_commit: commit.into(),
        tags: vec![],
        cpu_model: "Known CPU".into(),
        device: "cpu".into(),
        threads: 2,
        model: "resnet8".into(),
        batch: 32,
        steps: 200,
        t_cov: 20,
        t_inv: 200,
        stages: vec![
            stage("sgd", 0.0),
            stage("kfac", 0.020),
            stage("skfac-rs", skfac_inverse),
        ],
    }
}

#[test]
fn k_fac_rows_stored_before_their_configuration_read_as_eigen_in_f64() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let store = Store::open(&db).unwrap();
    let mut rec = record("aaaa1111", 0.002);
    rec.stages[1].kfac = Some(PEERS);
    rec.stages[1].failed_refreshes = 3;
    store.add_bench(&rec, "{}", "{}").unwrap();
    let read = |store: &Store| store.bench_records().unwrap().remove(0).stages;
    let back = read(&store);
    assert_eq!((back[1].kfac, back[1].failed_refreshes), (Some(PEERS), 3));
    assert_eq!((back[0].kfac, back[2].kfac), (None, None));
    drop(store);
    // What a row written before the columns existed holds.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            sqlx::query(
                "UPDATE bench_stages SET dense_method = NULL, inverse_dtype = NULL,
                     failed_refreshes = NULL",
            )
            .execute(&mut c)
            .await
            .unwrap();
        });
    let back = read(&Store::open(&db).unwrap());
    assert_eq!(
        (back[1].kfac, back[1].failed_refreshes),
        (Some(FORMER_KFAC), 0)
    );
    assert_eq!(back[1].label(), "kfac (eigen, f64)");
    assert_eq!((back[0].kfac, back[2].kfac), (None, None));
}

fn regress_status(db: &Path) -> Option<i32> {
    Command::new(env!("CARGO_BIN_EXE_skfac"))
        .args(["regress", "--db", db.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .code()
}

fn regress(db: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["regress", "--db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    skfac(&args)
}

#[test]
fn regress_fails_on_a_planted_regression_and_passes_a_clean_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let store = Store::open(&db).unwrap();
    let (ok, text) = regress(&db, &[]);
    assert!(!ok && text.contains("skfac bench-gains"), "{text}");
    assert_eq!(
        regress_status(&db),
        Some(2),
        "nothing to compare is not a regression"
    );

    store
        .add_bench(&record("aaaa1111", 0.002), "{}", "{}")
        .unwrap();
    // Within noise: the inverse speed-up goes from 10× to 9.5×.
    store
        .add_bench(&record("bbbb2222", 0.0021), "{}", "{}")
        .unwrap();
    let (ok, text) = regress(&db, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("inverse speed-up kfac (eigen, f64) / skfac-rs"),
        "{text}"
    );

    // Planted: SKFAC's inverse became as slow as K-FAC's.
    store
        .add_bench(&record("cccc3333", 0.020), "{}", "{}")
        .unwrap();
    let (ok, text) = regress(&db, &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("REGRESSED"), "{text}");
    assert_eq!(regress_status(&db), Some(1));
    // Against the first commit by prefix, and with a tolerance wide enough, it passes.
    let (ok, text) = regress(&db, &["--baseline", "aaaa", "--tolerance", "2000%"]);
    assert!(ok && text.contains("commit aaaa1111"), "{text}");
    let (ok, text) = regress(&db, &["--baseline", "latest-tagged"]);
    assert!(
        !ok && text.contains("no baseline record (latest-tagged)"),
        "{text}"
    );
    let (ok, text) = regress(&db, &["--tolerance", "ten"]);
    assert!(!ok && text.contains("10%"), "{text}");
}

#[test]
fn bench_gains_stores_a_record_regress_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let plot = dir.path().join("gains.svg");
    let d = db.to_str().unwrap();
    let args = [
        "bench-gains",
        "--db",
        d,
        "--model",
        "mlp",
        "--batch",
        "16",
        "--cycles",
        "1",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--plot",
        plot.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let (ok, text) = skfac(&args);
        assert!(ok, "{text}");
        assert!(
            text.contains("skfac-ss(1)")
                && text.contains("peers/this")
                && text.contains("fastest/this")
                && text.contains("kfac (cholesky, f64)")
                && text.contains("fastest K-FAC that trains: kfac (")
                && text.contains("stored as benchmark record"),
            "{text}"
        );
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("skfac-rs") && svg.contains("kfac (eigen, f32)"),
        "{svg:.200}"
    );
    let records = Store::open(&db).unwrap().bench_records().unwrap();
    assert_eq!(records.len(), 2);
    let r = &records[1];
    // One cycle is four steps; the periods default to the paper's.
    assert_eq!(
        (r.model.as_str(), r.batch, r.steps, r.t_cov, r.t_inv),
        ("mlp", 16, 4, 20, 200)
    );
    // sgd, adam, kfac in four configurations (eigen and Cholesky, f32 and f64), kfac-sua,
    // skfac-rs, skfac-ss(1).
    assert_eq!(r.stages.len(), 9);
    let configs: Vec<_> = r.stages.iter().filter_map(|s| s.kfac).collect();
    assert_eq!(configs.len(), 4);
    assert_eq!(configs[0], PEERS);
    for s in &r.stages {
        assert!(s.seconds[0] > 0.0 && s.seconds[1] > 0.0, "{s:?}");
        let second_order = s.optimizer.is_second_order();
        // Inverses and preconditioning are the K-FAC family's alone.
        for stage in [3, 4] {
            assert_eq!(s.seconds[stage] > 0.0, second_order, "{s:?}");
        }
    }
    let (ok, text) = regress(&db, &["--tolerance", "100000%"]);
    assert!(
        ok && text.contains("overhead kfac (eigen, f32) / sgd")
            && text.contains("step skfac-rs / kfac (fastest)"),
        "{text}"
    );
    // Records amortised over other periods are not a baseline.
    let other = [&args[..], &["--t-inv", "50"]].concat();
    let (ok, text) = skfac(&other);
    assert!(ok, "{text}");
    let (ok, text) = regress(&db, &[]);
    assert!(!ok && text.contains("T_inv 50"), "{text}");
    let (ok, text) = skfac(&["bench-gains", "--db", d, "--plot", "gains.pdf"]);
    assert!(!ok && text.contains(".svg or .png"), "{text}");
    // A subset of K-FAC's configurations: one K-FAC row, so no fastest to choose.
    let one = [&args[..13], &["--kfac-configs", "cholesky-f32"]].concat();
    let (ok, text) = skfac(&one);
    assert!(ok, "{text}");
    assert!(
        text.contains("kfac (cholesky, f32)") && !text.contains("kfac (eigen, f32)"),
        "{text}"
    );
    let last = Store::open(&db)
        .unwrap()
        .bench_records()
        .unwrap()
        .pop()
        .unwrap();
    let configs: Vec<_> = last.stages.iter().filter_map(|s| s.kfac).collect();
    assert_eq!((last.stages.len(), configs.len()), (6, 1));
    let (ok, text) = skfac(&[&args[..13], &["--kfac-configs", "cholesky-f16"]].concat());
    assert!(
        !ok && text.contains("valid: eigen-f32, eigen-f64"),
        "{text}"
    );
}
