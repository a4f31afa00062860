//! The `skfac` command: bad input ends with a one-line error naming the fix, never a panic.

mod common;
use common::skfac;

#[test]
fn missing_data_names_the_command_that_fetches_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, text) = skfac(&[
        "train",
        "--model",
        "resnet8",
        "--data-dir",
        d,
        "--threads",
        "1",
    ]);
    assert!(!ok);
    assert!(text.contains("skfac data cifar10"), "{text}");
    let (ok, text) = skfac(&["train", "--model", "mlp", "--data-dir", d, "--threads", "1"]);
    assert!(!ok);
    assert!(text.contains("skfac data fashion-mnist"), "{text}");
}

#[test]
fn unknown_names_list_the_valid_choices() {
    let (ok, text) = skfac(&["train", "--model", "resnet9", "--threads", "1"]);
    assert!(
        !ok && text.contains("valid choices") && text.contains("resnet20"),
        "{text}"
    );
    let (ok, text) = skfac(&["train", "--optimizer", "sdg", "--threads", "1"]);
    assert!(
        !ok && text.contains("valid choices") && text.contains("adam"),
        "{text}"
    );
    let (ok, text) = skfac(&["train", "--dataset", "mnist", "--threads", "1"]);
    assert!(!ok && text.contains("fashion-mnist"), "{text}");
    let (ok, text) = skfac(&["train", "--epochs", "0", "--threads", "1"]);
    assert!(!ok && text.contains("--epochs"), "{text}");
    let (ok, text) = skfac(&["train", "--device", "gpu", "--threads", "1"]);
    assert!(!ok && text.contains("valid choices: cpu, cuda"), "{text}");
}

/// The test build has no `cuda` feature: asking for a GPU says how to get one, no panic.
#[test]
fn cuda_without_the_feature_says_how_to_build_it() {
    for args in [
        &["train", "--device", "cuda", "--threads", "1"][..],
        &["bench-step", "mlp", "2", "1", "--device", "cuda:0"][..],
        &[
            "bench-gains",
            "--model",
            "mlp",
            "--device",
            "cuda",
            "--threads",
            "1",
        ][..],
    ] {
        let (ok, text) = skfac(args);
        assert!(!ok && text.contains("just build-cuda"), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn a_wrong_cifar_tarball_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.tgz");
    std::fs::write(&fake, b"nope").unwrap();
    let (ok, text) = skfac(&[
        "data",
        "cifar10",
        "--dir",
        dir.path().to_str().unwrap(),
        "--source",
        fake.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("SHA-256"), "{text}");
}
