//! A sweep with hand-picked epochs, whose table values are worked out by hand below, and the
//! files a report writes from it.

use reports::{groups, stage_rows, target_rows, EpochPoint, RunResult, StageMeans, SweepResults};

/// A run whose epoch `i` (1-based) has test accuracy `acc[i-1]` and ends at `secs[i-1]`
/// training seconds.
fn run(optimizer: &str, samples: Option<u32>, seed: u64, acc: &[f64], secs: &[f64]) -> RunResult {
    RunResult {
        model: "resnet8".into(),
        dataset: "cifar10".into(),
        optimizer: optimizer.parse().unwrap(),
        samples,
        seed,
        status: "finished".into(),
        git_commit: "abc123".into(),
        cpu_model: "Test CPU".into(),
        device: "cpu".into(),
        threads: 2,
        cores: None,
        processes: 1,
        comm_strategy: "none".into(),
        comm: None,
        crate_versions: "{}".into(),
        epochs: acc
            .iter()
            .zip(secs)
            .enumerate()
            .map(|(i, (&a, &s))| EpochPoint {
                epoch: i + 1,
                train_loss: 2.0 - a,
                train_accuracy: a,
                test_loss: 2.1 - a,
                test_accuracy: a,
                validation_accuracy: None,
                wall_seconds: s,
                epoch_seconds: None,
                cpu_seconds: None,
                load_average: None,
                probe_seconds: None,
            })
            .collect(),
        stages: Some(StageMeans {
            seconds: [0.010, 0.020, 0.004, 0.002, 0.001, 0.0, 0.003],
            steps: 100,
        }),
    }
}

fn sweep() -> SweepResults {
    let mut diverged = run("skfac-ss", Some(1), 0, &[0.3, f64::NAN], &[50.0, 100.0]);
    diverged.status = "diverged".into();
    diverged.epochs[1].train_loss = f64::NAN;
    SweepResults {
        name: "known".into(),
        target: Some(0.6),
        search: Vec::new(),
        runs: vec![
            // Reaches 60% in epoch 3, at 180 s = 3 min.
            run(
                "sgd",
                None,
                0,
                &[0.40, 0.55, 0.61, 0.70],
                &[60.0, 120.0, 180.0, 240.0],
            ),
            // Never reaches it.
            run(
                "adam",
                None,
                0,
                &[0.40, 0.50, 0.55, 0.59],
                &[60.0, 120.0, 180.0, 240.0],
            ),
            // Reaches it in epoch 2, at 150 s = 2.5 min: the gap reference.
            run(
                "kfac",
                None,
                0,
                &[0.50, 0.60, 0.70, 0.75],
                &[75.0, 150.0, 225.0, 300.0],
            ),
            // Two seeds: epoch 2 at 90 s and epoch 3 at 150 s: 2.5 epochs, 2 min.
            run(
                "skfac-rs",
                None,
                0,
                &[0.50, 0.65, 0.70, 0.72],
                &[45.0, 90.0, 135.0, 180.0],
            ),
            run(
                "skfac-rs",
                None,
                1,
                &[0.45, 0.58, 0.62, 0.74],
                &[50.0, 100.0, 150.0, 200.0],
            ),
            diverged,
            // One seed of two reaches it, in epoch 4 at 264 s.
            run(
                "skfac-ss",
                Some(4),
                0,
                &[0.4, 0.5, 0.55, 0.6],
                &[66.0, 132.0, 198.0, 264.0],
            ),
            run(
                "skfac-ss",
                Some(4),
                1,
                &[0.4, 0.5, 0.55, 0.58],
                &[66.0, 132.0, 198.0, 264.0],
            ),
        ],
    }
}

#[test]
fn time_to_target_rows_match_the_hand_computed_values() {
    let s = sweep();
    let g = groups(&s);
    assert_eq!(g.len(), 1);
    let rows = target_rows(&g[0], 0.6);
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "SGD",
            "Adam",
            "K-FAC",
            "SKFAC-RS",
            "SKFAC-SS (s'=1)",
            "SKFAC-SS (s'=4)"
        ]
    );
    let by = |l: &str| rows.iter().find(|r| r.label == l).unwrap();

    let sgd = by("SGD");
    assert_eq!((sgd.epochs, sgd.minutes), (Some(3.0), Some(3.0)));
    assert!(
        (sgd.gap.unwrap() - 0.2).abs() < 1e-12,
        "3 min vs 2.5 min is +20%"
    );
    assert_eq!(sgd.final_accuracy, Some(0.70));

    let adam = by("Adam");
    assert_eq!(
        (adam.reached, adam.epochs, adam.minutes, adam.gap),
        (0, None, None, None)
    );

    let kfac = by("K-FAC");
    assert_eq!(
        (kfac.epochs, kfac.minutes, kfac.gap),
        (Some(2.0), Some(2.5), Some(0.0))
    );

    let rs = by("SKFAC-RS");
    assert_eq!((rs.runs, rs.reached), (2, 2));
    assert_eq!((rs.epochs, rs.minutes), (Some(2.5), Some(2.0)));
    assert!(
        (rs.gap.unwrap() + 0.2).abs() < 1e-12,
        "2 min vs 2.5 min is -20%"
    );
    assert!((rs.final_accuracy.unwrap() - 0.73).abs() < 1e-12);

    let ss1 = by("SKFAC-SS (s'=1)");
    assert_eq!(
        (ss1.reached, ss1.diverged, ss1.final_accuracy),
        (0, 1, None)
    );

    let ss4 = by("SKFAC-SS (s'=4)");
    assert_eq!((ss4.runs, ss4.reached), (2, 1));
    assert_eq!((ss4.epochs, ss4.minutes), (Some(4.0), Some(4.4)));
}

#[test]
fn stage_rows_weight_runs_by_their_steps() {
    let mut s = sweep();
    // A second skfac-rs seed three times as long with every stage doubled.
    s.runs[4].stages = Some(StageMeans {
        seconds: [0.020, 0.040, 0.008, 0.004, 0.002, 0.0, 0.006],
        steps: 300,
    });
    let g = groups(&s);
    let rows = stage_rows(&g[0]);
    let rs = rows.iter().find(|r| r.key == "skfac-rs").unwrap();
    assert_eq!(rs.steps, 400);
    // (100 × 10 ms + 300 × 20 ms) / 400 = 17.5 ms
    assert!((rs.seconds[0] - 0.0175).abs() < 1e-12, "{:?}", rs.seconds);
    let shares = rs.shares();
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(
        (shares[1] - 0.5).abs() < 1e-12,
        "backward is half of each run's step"
    );
}

#[test]
fn the_report_writes_valid_figures_tables_and_documents() {
    let dir = tempfile::tempdir().unwrap();
    let w = reports::write_report(&sweep(), dir.path()).unwrap();
    let names: Vec<String> = w
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in [
        "convergence-epochs.png",
        "convergence-epochs.svg",
        "convergence-time.png",
        "convergence-time.svg",
        "stage-times.png",
        "stage-times.svg",
        "time-to-target.md",
        "time-to-target.csv",
        "stage-times.csv",
        "report.md",
        "report.html",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} missing from {names:?}");
    }
    for p in w
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
    {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert!(info.width >= 800 && info.height >= 300, "{p:?}: {info:?}");
        // Not a blank canvas: lines and text leave plenty of non-white pixels.
        let dark = buf
            .chunks(3)
            .filter(|px| px.iter().all(|&c| c < 128))
            .count();
        assert!(dark > 1000, "{p:?} has only {dark} dark pixels");
    }
    for p in w
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        let text = std::fs::read_to_string(p).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(text.contains("SKFAC-RS"), "{p:?} lacks the legend");
    }
    let md = std::fs::read_to_string(dir.path().join("time-to-target.md")).unwrap();
    assert!(md.contains("| SGD | 3 | 3.00 | +20.00% | 70.00% |"), "{md}");
    // No run held out a validation split: no column for it.
    assert!(!md.contains("validation"), "{md}");
    assert!(
        md.contains("| Adam | not reached | not reached | — | 59.00% |"),
        "{md}"
    );
    assert!(md.contains("| K-FAC | 2 | 2.50 | 0% | 75.00% |"), "{md}");
    assert!(
        md.contains("| SKFAC-RS | 2.5 | 2.00 | -20.00% | 73.00% |"),
        "{md}"
    );
    assert!(
        md.contains("| SKFAC-SS (s'=1) | not reached | not reached | — | diverged |"),
        "{md}"
    );
    assert!(
        md.contains("| SKFAC-SS (s'=4) | 4 (1/2 seeds) | 4.40 | +76.00% | 59.00% |"),
        "{md}"
    );
    let csv = std::fs::read_to_string(dir.path().join("time-to-target.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l == "resnet8,cifar10,kfac,,K-FAC,1,1,0,2,2.5,0,0.75,false,,,,0"),
        "{csv}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "three figures inline");
    assert!(html.contains("Test CPU"), "hardware named");
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("![") && report.contains("convergence-time.png"));
    assert!(report.contains("Commits: abc123 (8 runs)"), "{report}");
}

#[test]
fn final_validation_accuracy_is_the_mean_over_seeds_of_the_last_epochs() {
    let mut s = sweep();
    // SKFAC-RS's two seeds end at 0.75 and 0.55 on the validation split; the others hold
    // none out.
    let rs: Vec<&mut RunResult> = s
        .runs
        .iter_mut()
        .filter(|r| r.optimizer.name() == "skfac-rs")
        .collect();
    for (r, v) in rs.into_iter().zip([0.75, 0.55]) {
        r.epochs[0].validation_accuracy = Some(0.1);
        r.epochs.last_mut().unwrap().validation_accuracy = Some(v);
    }
    let g = groups(&s);
    let rows = target_rows(&g[0], 0.6);
    let by = |l: &str| rows.iter().find(|r| r.label == l).unwrap();
    assert_eq!(by("SKFAC-RS").final_validation, Some(0.65));
    assert_eq!(by("K-FAC").final_validation, None);
    let dir = tempfile::tempdir().unwrap();
    reports::write_report(&s, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("time-to-target.md")).unwrap();
    assert!(md.contains("| final validation accuracy |"), "{md}");
    assert!(
        md.contains("| SKFAC-RS | 2.5 | 2.00 | -20.00% | 73.00% | 65.00% |"),
        "{md}"
    );
    assert!(
        md.contains("| K-FAC | 2 | 2.50 | 0% | 75.00% | — |"),
        "{md}"
    );
    let csv = std::fs::read_to_string(dir.path().join("time-to-target.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("resnet8,cifar10,skfac-rs,") && l.ends_with(",0.65,0")),
        "{csv}"
    );
}

/// `run` on a machine with `cores` logical CPUs whose epoch `i` had mean load average
/// `loads[i-1]`, taking `cpu[i-1]` CPU seconds over its 60 wall seconds on 2 threads.
fn loaded(mut r: RunResult, cores: Option<usize>, loads: &[f64], cpu: &[f64]) -> RunResult {
    r.cores = cores;
    for ((e, &l), &c) in r.epochs.iter_mut().zip(loads).zip(cpu) {
        e.load_average = Some(l);
        e.cpu_seconds = Some(c);
        e.epoch_seconds = Some(60.0);
    }
    r
}

#[test]
fn rows_timed_on_a_busy_machine_are_marked_up_to_their_target_epoch() {
    let secs = [60.0, 120.0, 180.0, 240.0];
    let s = SweepResults {
        name: "busy".into(),
        target: Some(0.6),
        search: Vec::new(),
        runs: vec![
            // Target in epoch 3; epoch 2 ran at load 3.9 on 2 cores: busy.
            loaded(
                run("sgd", None, 0, &[0.40, 0.55, 0.61, 0.70], &secs),
                Some(2),
                &[2.1, 3.9, 2.0, 2.0],
                &[120.0, 60.0, 120.0, 120.0],
            ),
            // Never reached, so every epoch counts: epoch 4 at 3.0 > 2.5 is busy.
            loaded(
                run("adam", None, 0, &[0.40, 0.50, 0.55, 0.59], &secs),
                Some(2),
                &[2.0, 2.0, 2.0, 3.0],
                &[96.0; 4],
            ),
            // Target in epoch 2 at exactly cores + 0.5 (not busy); the busy epochs after the
            // target do not touch its time.
            loaded(
                run("kfac", None, 0, &[0.50, 0.60, 0.70, 0.75], &secs),
                Some(2),
                &[2.0, 2.5, 9.0, 9.0],
                &[96.0, 96.0, 30.0, 30.0],
            ),
            // A load of 9 with the cores unknown (an older store): never busy.
            loaded(
                run("skfac-rs", None, 0, &[0.50, 0.65, 0.70, 0.72], &secs),
                None,
                &[9.0; 4],
                &[120.0; 4],
            ),
            // No load data at all.
            run("kfac-sua", None, 0, &[0.50, 0.65, 0.70, 0.72], &secs),
        ],
    };
    let g = groups(&s);
    let rows = target_rows(&g[0], 0.6);
    let by = |l: &str| &rows.iter().find(|r| r.label == l).unwrap().load;
    let (sgd, adam, kfac, rs, sua) = (
        by("SGD"),
        by("Adam"),
        by("K-FAC"),
        by("SKFAC-RS"),
        by("SUA"),
    );
    assert_eq!(
        [sgd.busy, adam.busy, kfac.busy, rs.busy, sua.busy],
        [true, true, false, false, false]
    );
    // Highest load over epochs 1-3, 1-4 and 1-2; the rest past the target are ignored.
    assert_eq!(sgd.max_load_average, Some(3.9));
    assert_eq!(adam.max_load_average, Some(3.0));
    assert_eq!(kfac.max_load_average, Some(2.5));
    assert_eq!((rs.max_load_average, rs.cores), (Some(9.0), None));
    assert_eq!((sua.max_load_average, sua.cpu_share()), (None, None));
    // CPU seconds / (60 s × 2 threads): SGD (1 + 0.5 + 1) / 3; K-FAC 0.8 in epochs 1-2.
    assert!((sgd.cpu_share().unwrap() - 2.5 / 3.0).abs() < 1e-12);
    assert!((adam.cpu_share().unwrap() - 0.8).abs() < 1e-12);
    assert!((kfac.cpu_share().unwrap() - 0.8).abs() < 1e-12);

    let dir = tempfile::tempdir().unwrap();
    reports::write_report(&s, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("time-to-target.md")).unwrap();
    for line in [
        "| SGD | 3 | 3.00 † | +50.00% | 70.00% |",
        "| Adam | not reached | not reached † | — | 59.00% |",
        "| K-FAC | 2 | 2.00 | 0% | 75.00% |",
        "| SKFAC-RS | 2 | 2.00 | 0% | 72.00% |",
        "| SUA | 2 | 2.00 | 0% | 72.00% |",
        "† SGD: timed on a busy or slowed machine (load average 3.9 on 2 cores during its epochs): its time is not comparable.",
        "† Adam: timed on a busy or slowed machine (load average 3.0 on 2 cores during its epochs): its time is not comparable.",
    ] {
        assert!(md.lines().any(|l| l == line), "no `{line}` in:\n{md}");
    }
    assert_eq!(md.matches('†').count(), 4, "{md}");
    let csv = std::fs::read_to_string(dir.path().join("time-to-target.csv")).unwrap();
    for line in [
        "resnet8,cifar10,kfac,,K-FAC,1,1,0,2,2,0,0.75,false,2.5,0.8,,0",
        "resnet8,cifar10,skfac-rs,,SKFAC-RS,1,1,0,2,2,0,0.72,false,9,1,,0",
        "resnet8,cifar10,kfac-sua,,SUA,1,1,0,2,2,0,0.72,false,,,,0",
    ] {
        assert!(csv.lines().any(|l| l == line), "no `{line}` in:\n{csv}");
    }
    let sgd_csv = csv.lines().find(|l| l.contains(",SGD,")).unwrap();
    assert!(
        sgd_csv.starts_with("resnet8,cifar10,sgd,,SGD,1,1,0,3,3,0.5,0.7,true,3.9,0.83"),
        "{sgd_csv}"
    );
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        report.contains("† SGD: timed on a busy or slowed machine"),
        "{report}"
    );
    assert!(
        report.contains("so their step times are inflated: SGD seed 0 (load average 3.9 on 2 cores); Adam seed 0 (load average 3.0 on 2 cores); K-FAC seed 0 (load average 9.0 on 2 cores)."),
        "{report}"
    );
    assert!(
        report.contains("3.0 to 9.0; 3 of 4 runs trained on a busy machine in some epoch"),
        "{report}"
    );
}

#[test]
fn a_sweep_without_finished_epochs_is_refused_by_name() {
    let mut s = sweep();
    for r in &mut s.runs {
        r.epochs.clear();
    }
    let dir = tempfile::tempdir().unwrap();
    let e = reports::write_report(&s, dir.path()).unwrap_err();
    assert!(e.to_string().contains("sweep `known`"), "{e}");
}
