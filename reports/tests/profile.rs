//! The performance profile of two workloads whose times to target are set by hand, against
//! ρ and areas worked out by hand.

use reports::profile::{profile, workloads};
use reports::{write_profile, EpochPoint, RunResult, SweepResults};

/// A run of `model` that first reaches `target` at `minutes` (epoch 2), or never (`None`).
fn run(model: &str, optimizer: &str, minutes: Option<f64>) -> RunResult {
    let secs = 60.0 * minutes.unwrap_or(1.0);
    let acc = if minutes.is_some() { 0.9 } else { 0.1 };
    RunResult {
        model: model.into(),
        dataset: "cifar10".into(),
        optimizer: optimizer.parse().unwrap(),
        samples: None,
        seed: 0,
        status: "finished".into(),
        git_commit: String::new(),
        cpu_model: "Test CPU".into(),
        device: "cpu".into(),
        threads: 2,
        cores: None,
        processes: 1,
        comm_strategy: "none".into(),
        comm: None,
        crate_versions: "{}".into(),
        epochs: [(0.05, secs / 2.0), (acc, secs)]
            .iter()
            .enumerate()
            .map(|(i, &(a, s))| EpochPoint {
                epoch: i + 1,
                train_loss: 1.0,
                train_accuracy: a,
                test_loss: 1.0,
                test_accuracy: a,
                validation_accuracy: None,
                wall_seconds: s,
                epoch_seconds: None,
                cpu_seconds: None,
                load_average: None,
                probe_seconds: None,
            })
            .collect(),
        stages: None,
    }
}

fn sweep(name: &str, runs: Vec<RunResult>) -> SweepResults {
    SweepResults {
        name: name.into(),
        target: Some(0.5),
        runs,
        search: Vec::new(),
    }
}

#[test]
fn the_profile_of_two_workloads_matches_the_hand_computed_values() {
    // ResNet-8: K-FAC fastest (1 min), SKFAC-RS 1.5x, SGD 2x. ResNet-20: SKFAC-RS fastest
    // (2 min), SGD 3x, K-FAC never.
    let a = sweep(
        "a",
        vec![
            run("resnet8", "sgd", Some(2.0)),
            run("resnet8", "kfac", Some(1.0)),
            run("resnet8", "skfac-rs", Some(1.5)),
        ],
    );
    let b = sweep(
        "b",
        vec![
            run("resnet20", "sgd", Some(6.0)),
            run("resnet20", "kfac", None),
            run("resnet20", "skfac-rs", Some(2.0)),
        ],
    );
    // A third sweep of ResNet-8 replaces the first's: a workload counts once, from its last sweep.
    let a2 = sweep(
        "a2",
        vec![
            run("resnet8", "sgd", Some(2.0)),
            run("resnet8", "kfac", Some(1.0)),
            run("resnet8", "skfac-rs", Some(1.5)),
        ],
    );
    let ws = workloads(&[a.clone(), b.clone(), a2]);
    assert_eq!(ws.len(), 2);
    assert_eq!((ws[0].sweep.as_str(), ws[1].sweep.as_str()), ("a2", "b"));
    let rows = profile(&ws);
    let by = |label: &str| rows.iter().find(|r| r.config.label() == label).unwrap();
    // ρ at τ = 1, 1.25, 1.5, 2, 4, and the area (Σ (4 − r) over reached workloads) / (3 · 2).
    let expect = [
        ("SGD", [0.0, 0.0, 0.0, 0.5, 1.0], (2.0 + 1.0) / 6.0),
        ("K-FAC", [0.5, 0.5, 0.5, 0.5, 0.5], 3.0 / 6.0),
        ("SKFAC-RS", [0.5, 0.5, 1.0, 1.0, 1.0], (2.5 + 3.0) / 6.0),
    ];
    for (label, at, area) in expect {
        let r = by(label);
        assert_eq!(r.at, at, "{label}");
        assert!((r.area - area).abs() < 1e-12, "{label}: {}", r.area);
    }

    let dir = tempfile::tempdir().unwrap();
    assert!(
        write_profile(std::slice::from_ref(&a), dir.path())
            .unwrap()
            .is_none(),
        "one workload makes no profile"
    );
    let w = write_profile(&[a, b], dir.path()).unwrap().unwrap();
    assert_eq!(w.files.len(), 5);
    let md = std::fs::read_to_string(dir.path().join("profile.md")).unwrap();
    for line in [
        "| SKFAC-RS | 0.50 | 0.50 | 1.00 | 1.00 | 1.00 | 0.917 |",
        "| K-FAC | 1.00 | not reached |",
        "| SGD | 2.00 | 3.00 |",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }
    let svg = std::fs::read_to_string(dir.path().join("profile.svg")).unwrap();
    assert!(svg.contains("SKFAC-RS (area 0.917)"), "{svg}");
    let csv = std::fs::read_to_string(dir.path().join("profile.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l == "SGD,sgd,,0.5,0,0,0,0.5,1,2,3"),
        "{csv}"
    );
}
