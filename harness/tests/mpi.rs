//! Data-parallel training over MPI: two processes on equal shards of each global batch must
//! train the model one process trains on the whole batch (same data order, augmentation,
//! sampled-Fisher labels and subsampling draws), to float tolerance. The MLP and the conv net
//! have no BatchNorm, whose per-shard batch statistics would differ by design.
#![cfg(feature = "mpi")]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use harness::data::fashion_mnist;

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// Trains `model` on Fashion-MNIST with `optimizer` on `ranks` processes, saving it to `out`.
fn train(data: &Path, model: &str, optimizer: &str, out: &Path, ranks: usize) -> String {
    let skfac = env!("CARGO_BIN_EXE_skfac");
    let mut args: Vec<String> = Vec::new();
    let mut cmd = if ranks > 1 {
        args.extend(
            ["--oversubscribe", "-np", &ranks.to_string(), skfac]
                .iter()
                .map(|s| s.to_string()),
        );
        let mut c = Command::new("mpirun");
        // CI runs as root, which Open MPI refuses unless told.
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        c
    } else {
        Command::new(skfac)
    };
    args.extend(
        [
            "train",
            "--dataset",
            "fashion-mnist",
            "--samples",
            "2",
            "--model",
            model,
            "--optimizer",
            optimizer,
            "--epochs",
            "1",
            "--train-subset",
            "384",
            "--batch-size",
            "64",
            "--lr",
            "0.05",
            "--damping",
            "0.3",
            "--t-cov",
            "2",
            "--t-inv",
            "3",
            "--threads",
            "1",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(data.display().to_string());
    args.push("--save-model".into());
    args.push(out.display().to_string());
    let o = cmd.args(&args).output().expect("mpirun and skfac run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "{ranks} process(es), {optimizer}: {text}"
    );
    text
}

fn load(p: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

/// Every parameter of `a` and `b` within 1e-4 of the largest entry of its tensor: six steps,
/// where only the summation order of the shard means differs.
fn assert_same_model(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (name, ta) in a {
        let tb = &b[name];
        let diff = (ta - tb).unwrap().abs().unwrap().max_all().unwrap();
        let scale = ta.abs().unwrap().max_all().unwrap();
        let rel = diff.to_scalar::<f32>().unwrap() as f64
            / (scale.to_scalar::<f32>().unwrap() as f64).max(1e-6);
        worst = worst.max(rel);
    }
    eprintln!("{what}: largest relative parameter difference {worst:e}");
    assert!(
        worst < 1e-4,
        "{what}: parameters differ by {worst:e} (relative)"
    );
}

#[test]
fn two_processes_train_what_one_trains_on_the_same_global_batch() {
    assert!(
        Path::new(FASHION).exists(),
        "{FASHION} is missing: run `bash scripts/setup.sh`"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fashion_mnist::obtain(&data, None).unwrap();
    let mut trained = Vec::new();
    for optimizer in ["sgd", "kfac", "skfac-rs"] {
        let one = dir.path().join(format!("{optimizer}-1.safetensors"));
        let two = dir.path().join(format!("{optimizer}-2.safetensors"));
        train(&data, "mlp", optimizer, &one, 1);
        let text = train(&data, "mlp", optimizer, &two, 2);
        assert!(text.contains("× 2 processes"), "{text}");
        assert!(text.contains("gradient all-reduce"), "{text}");
        // K-FAC's inverses are each computed by one process and shared.
        assert_eq!(
            text.contains("inverses shared"),
            optimizer == "kfac",
            "{text}"
        );
        let a = load(&one);
        assert_same_model(&a, &load(&two), optimizer);
        trained.push(a);
    }
    // The agreement above means something: the optimizers themselves train different models.
    let w = "fc1.weight";
    for (i, j) in [(0, 1), (1, 2)] {
        let (x, y) = (&trained[i][w], &trained[j][w]);
        let d = (x - y).unwrap().abs().unwrap().max_all().unwrap();
        assert!(
            d.to_scalar::<f32>().unwrap() > 1e-4,
            "models {i} and {j} coincide"
        );
    }
}

#[test]
fn two_processes_train_what_one_trains_with_every_k_fac_variant_on_a_conv_net() {
    assert!(Path::new(FASHION).exists(), "{FASHION} is missing");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fashion_mnist::obtain(&data, None).unwrap();
    // Convolutions bring what the MLP lacks: SUA's factors, SKFAC's rows summed over
    // positions (skfac-rs) and subsampled at s' = 2 (skfac-ss), the same draws on every shard.
    let mut trained = Vec::new();
    for optimizer in ["kfac", "kfac-sua", "skfac-rs", "skfac-ss"] {
        let one = dir.path().join(format!("{optimizer}-1.safetensors"));
        let two = dir.path().join(format!("{optimizer}-2.safetensors"));
        train(&data, "convnet", optimizer, &one, 1);
        let text = train(&data, "convnet", optimizer, &two, 2);
        assert!(text.contains("× 2 processes"), "{text}");
        let a = load(&one);
        assert_same_model(&a, &load(&two), &format!("convnet {optimizer}"));
        trained.push(a);
    }
    let w = "conv1.weight";
    for i in 1..trained.len() {
        let d = (&trained[0][w] - &trained[i][w])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(
            d.to_scalar::<f32>().unwrap() > 1e-5,
            "kfac and variant {i} trained the same model"
        );
    }
}

#[test]
fn a_two_process_sweep_records_one_set_of_rows_with_its_communication() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dp.toml");
    std::fs::write(
        &file,
        r#"
models = ["mlp"]
optimizers = ["sgd", "kfac", "skfac-rs"]
seeds = [0]
epochs = 2
train_subset = 512
batch_size = 64
target_accuracy = 0.5
[hyper]
damping = 0.3
t_cov = 2
t_inv = 4
"#,
    )
    .unwrap();
    let sweep = |db: &str, extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_skfac"))
            .args(["sweep", file.to_str().unwrap(), "--threads", "1", "--db"])
            .arg(dir.path().join(db))
            .arg("--results")
            .arg(dir.path().join("results"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{text}");
        text
    };
    sweep("one.db", &[]);
    let text = sweep("two.db", &["--mpi", "2"]);
    assert!(text.contains("each on 2 processes"), "{text}");

    let one = harness::store::Store::open(&dir.path().join("one.db")).unwrap();
    let two = harness::store::Store::open(&dir.path().join("two.db")).unwrap();
    let (r1, r2) = (
        one.sweep_results("dp").unwrap().unwrap(),
        two.sweep_results("dp").unwrap().unwrap(),
    );
    assert_eq!(r2.runs.len(), 3);
    for (a, b) in r1.runs.iter().zip(&r2.runs) {
        assert_eq!(
            (a.status.as_str(), b.status.as_str()),
            ("finished", "finished")
        );
        assert_eq!((a.processes, b.processes), (1, 2));
        assert_eq!(a.epochs.len(), 2);
        assert_eq!(
            b.stages.unwrap().steps,
            16,
            "each step logged once, by process 0"
        );
        for (ea, eb) in a.epochs.iter().zip(&b.epochs) {
            assert!(
                (ea.train_loss - eb.train_loss).abs() < 1e-4
                    && (ea.test_accuracy - eb.test_accuracy).abs() < 2e-3,
                "{}: {ea:?} vs {eb:?}",
                a.optimizer
            );
        }
        // Communication was measured: the gradient all-reduce moves every step.
        assert!(b.stages.unwrap().seconds[5] > 0.0, "{b:?}");
    }
    let strategies: Vec<(&str, &str, usize, usize)> = r2
        .runs
        .iter()
        .map(|r| {
            let c = r.comm.expect("communication logged");
            (
                r.optimizer.name(),
                r.comm_strategy.as_str(),
                c.statistics_steps,
                c.inverse_steps,
            )
        })
        .collect();
    // Statistics are exchanged on every t_cov = 2nd of the 16 steps, by the K-FAC family only;
    // K-FAC shares its inverses, each computed by one process, on every t_inv = 4th.
    assert_eq!(
        strategies,
        [
            ("sgd", "allreduce-grads", 0, 0),
            ("kfac", "allreduce-factors-share-inverses", 8, 4),
            ("skfac-rs", "allgather-rows", 8, 0)
        ]
    );
    // The report carries the communication table.
    let out = dir.path().join("report");
    let o = Command::new(env!("CARGO_BIN_EXE_skfac"))
        .args(["report", "--sweep", "dp", "--db"])
        .arg(dir.path().join("two.db"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| SKFAC-RS | 2 | allgather-rows |"), "{md}");
}

#[test]
fn a_batch_that_does_not_split_over_the_processes_ends_the_job_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.toml");
    std::fs::write(
        &file,
        "models = [\"mlp\"]\noptimizers = [\"sgd\"]\nseeds = [0]\nepochs = 1\n\
         train_subset = 256\nbatch_size = 63\ntarget_accuracy = 0.5\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skfac"))
        .args([
            "sweep",
            file.to_str().unwrap(),
            "--mpi",
            "2",
            "--threads",
            "1",
            "--db",
        ])
        .arg(dir.path().join("odd.db"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hang would be the failure this guards against.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("the job hung instead of ending");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("multiple of 2") && text.contains("odd.toml"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
