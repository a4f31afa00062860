//! The training loop on synthetic data sets the tests make themselves: it learns, it is
//! deterministic given the seed, and a diverging run ends as "diverged", not a panic.

use harness::data::{ImageSet, Normalisation, Splits};
use harness::train::{
    build_run, evaluate, run, train, Learner, Outcome, Progress, Silent, TrainConfig,
};
use optimizers::Local;
use optimizers::ScheduleKind;
use rand::{Rng, SeedableRng};

/// 10 classes of `h`x`w`x`c` images: class k lights a 2x2 block at a class-specific place,
/// on uniform noise. Linearly separable, so any working optimizer learns it.
fn synthetic(n: usize, h: usize, w: usize, c: usize, seed: u64) -> ImageSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * h * w * c);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % 10;
        let (by, bx) = (2 * (k / 4) + 1, 2 * (k % 4) + 1);
        for y in 0..h {
            for x in 0..w {
                for _ in 0..c {
                    let lit = (by..by + 2).contains(&y) && (bx..bx + 2).contains(&x);
                    images.push(if lit {
                        200 + rng.random_range(0..55)
                    } else {
                        rng.random_range(0..100)
                    });
                }
            }
        }
        labels.push(k as u8);
    }
    ImageSet {
        images,
        labels,
        height: h,
        width: w,
        channels: c,
        classes: 10,
    }
}

fn splits(h: usize, w: usize, c: usize, augment: bool) -> Splits {
    Splits {
        name: "synthetic",
        train: synthetic(640, h, w, c, 1),
        test: synthetic(200, h, w, c, 2),
        norm: Normalisation {
            mean: vec![0.3; c],
            std: vec![0.3; c],
        },
        augment,
    }
}

fn config(model: &str, optimizer: &str, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::new(model, optimizer.parse().unwrap());
    c.epochs = epochs;
    c.eval_batch_size = 100;
    c
}

#[test]
fn sgd_and_adam_learn_the_synthetic_task() {
    harness::threads::configure(Some(2)).unwrap();
    let data = splits(8, 8, 1, false);
    for opt in ["sgd", "adam"] {
        let started = std::time::Instant::now();
        let s = run(&config("mlp", opt, 3), &data, &mut Silent).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(s.outcome, Outcome::Finished);
        assert_eq!(s.steps, 3 * (640 / 32));
        let first = &s.epochs[0];
        let last = s.epochs.last().unwrap();
        assert!(
            last.train_loss < 0.5 * first.train_loss || last.train_loss < 0.1,
            "{opt}: {:?}",
            s.epochs
        );
        assert!(
            last.test_accuracy > 0.9,
            "{opt}: test accuracy {}",
            last.test_accuracy
        );
        assert!(s.mean_stage_times.forward > 0.0 && s.mean_stage_times.update > 0.0);
        // The training clock: the epochs' own seconds add up to the cumulative clock, each
        // epoch's 640 images over its seconds make its rate, and the whole call (model
        // building and evaluation too) took longer.
        let mut sum = 0.0;
        for e in &s.epochs {
            assert!(e.epoch_seconds > 0.0, "{e:?}");
            sum += e.epoch_seconds;
            assert!((e.train_seconds - sum).abs() <= 1e-9 * sum, "{e:?}");
            assert!(
                (e.images_per_second * e.epoch_seconds - 640.0).abs() < 1e-6,
                "{e:?}"
            );
        }
        assert!(sum < elapsed, "{sum} s of training in {elapsed} s");
    }
}

#[test]
fn a_validation_split_is_never_trained_on_and_evaluated_after_each_epoch() {
    harness::threads::configure(Some(2)).unwrap();
    let data = splits(8, 8, 1, false);
    let mut cfg = config("mlp", "sgd", 2);
    cfg.validation = 160;
    let dev = candle_core::Device::Cpu;
    let (net, mut opt) = build_run(&cfg, &data, &dev, std::sync::Arc::new(Local)).unwrap();
    let learner = Learner::alone(&net, opt.as_mut(), &dev);
    let s = train(&cfg, &data, learner, &mut Silent, Progress::default()).unwrap();
    // Each epoch walks the 480 images left, not the 640.
    assert_eq!(s.steps, 2 * (480 / 32));
    let held = data.hold_out(160).unwrap().1;
    assert_eq!(held.class_counts(), vec![16; 10]);
    // The last epoch's figures are the trained network's on the held-out images.
    let want = evaluate(&net, &held, &data.norm, 100, &dev, &optimizers::Local).unwrap();
    let last = s.epochs.last().unwrap();
    assert_eq!(last.validation_loss, Some(want.loss));
    assert_eq!(last.validation_accuracy, Some(want.accuracy));
    assert!(s.epochs.iter().all(|e| e.validation_accuracy.is_some()));
    assert!(want.accuracy > 0.9, "validation accuracy {}", want.accuracy);
    // Without a split there is nothing to report.
    cfg.validation = 0;
    cfg.epochs = 1;
    let s = run(&cfg, &data, &mut Silent).unwrap();
    assert_eq!(s.steps, 640 / 32);
    assert_eq!(s.epochs[0].validation_accuracy, None);
    // A split that leaves nothing to train on is refused by name.
    cfg.validation = 640;
    let e = run(&cfg, &data, &mut Silent).unwrap_err().to_string();
    assert!(
        e.contains("validation 640") && e.contains("choose fewer"),
        "{e}"
    );
}

#[test]
fn runs_are_deterministic_given_the_seed() {
    harness::threads::configure(Some(2)).unwrap();
    let data = splits(32, 32, 3, true);
    let mut cfg = config("resnet8", "sgd", 1);
    cfg.train_subset = Some(128);
    let a = run(&cfg, &data, &mut Silent).unwrap();
    let b = run(&cfg, &data, &mut Silent).unwrap();
    assert_eq!(a.epochs[0].train_loss, b.epochs[0].train_loss);
    assert_eq!(a.epochs[0].test_loss, b.epochs[0].test_loss);
    assert!(a.epochs[0].train_loss.is_finite());
    cfg.hyper.seed = 1;
    let c = run(&cfg, &data, &mut Silent).unwrap();
    assert_ne!(
        a.epochs[0].train_loss, c.epochs[0].train_loss,
        "the seed changes init and data order"
    );
}

#[test]
fn a_diverging_run_is_reported_with_its_step() {
    harness::threads::configure(Some(2)).unwrap();
    let data = splits(8, 8, 1, false);
    let mut cfg = config("mlp", "sgd", 2);
    cfg.hyper.lr = 1e12;
    cfg.loop_settings.schedule = ScheduleKind::Constant;
    let s = run(&cfg, &data, &mut Silent).unwrap();
    match s.outcome {
        Outcome::Diverged { step, loss } => {
            assert!((1..40).contains(&step), "step {step}");
            assert!(!loss.is_finite());
            assert_eq!(s.steps, step);
        }
        other => panic!("expected divergence, got {other:?}"),
    }
}

#[test]
fn a_training_set_smaller_than_a_batch_is_a_clear_error() {
    let data = splits(8, 8, 1, false);
    let mut cfg = config("mlp", "sgd", 1);
    cfg.train_subset = Some(10);
    let e = run(&cfg, &data, &mut Silent).unwrap_err().to_string();
    assert!(
        e.contains("--batch-size") && e.contains("--train-subset"),
        "{e}"
    );
}
