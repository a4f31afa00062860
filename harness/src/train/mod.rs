//! The training loop: epochs of seeded mini-batches, per-stage timing of every step,
//! evaluation on the test split after each epoch, divergence detection.

mod config;
mod eval;
mod fisher;
mod step;

pub use config::{ScheduleKind, TrainConfig};
pub use eval::{evaluate, Evaluation};
pub use fisher::sample_labels;
pub use step::{train_step, StepOutcome};

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use models::{ModelConfig, Network};
use optimizers::{build as build_optimizer, Optimizer, StageTimes};

use crate::data::{loader::make_batch, BatchPlan, Splits};

/// Metrics at the end of one epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Training wall-clock seconds since the start of the run, evaluation excluded.
    pub train_seconds: f64,
    /// Training images per second in this epoch.
    pub images_per_second: f64,
    pub learning_rate: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Outcome {
    Finished,
    /// The loss became NaN or infinite at this (0-based, global) step.
    Diverged {
        step: usize,
        loss: f64,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub epochs: Vec<EpochMetrics>,
    pub outcome: Outcome,
    pub steps: usize,
    /// Mean seconds per step in each stage.
    pub mean_stage_times: StageTimes,
}

/// What the caller sees while a run goes on.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    fn step_done(&mut self, _step_in_epoch: usize, _loss: f64) {}
    fn epoch_done(&mut self, _m: &EpochMetrics) {}
}

/// An observer that does nothing (tests, benchmarks).
pub struct Silent;
impl Observer for Silent {}

/// Builds the model and optimizer for `cfg` and trains on `data`.
pub fn run(cfg: &TrainConfig, data: &Splits, obs: &mut dyn Observer) -> Result<RunSummary> {
    let device = Device::Cpu;
    let t = &data.train;
    let model_cfg = ModelConfig {
        input: (t.height, t.width, t.channels),
        classes: t.classes,
        seed: cfg.seed,
    };
    let net = models::build(&cfg.model, &model_cfg, &device)?;
    let mut opt = build_optimizer(cfg.optimizer_kind()?, &net.param_set(), &cfg.hyper())?;
    train(cfg, data, &net, opt.as_mut(), &device, obs)
}

/// Trains `net` with `opt` for `cfg.epochs` epochs.
pub fn train(
    cfg: &TrainConfig,
    data: &Splits,
    net: &Network,
    opt: &mut dyn Optimizer,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<RunSummary> {
    cfg.validate()?;
    let n_train = cfg
        .train_subset
        .map_or(data.train.len(), |s| s.min(data.train.len()));
    let steps_per_epoch = n_train / cfg.batch_size;
    anyhow::ensure!(
        steps_per_epoch > 0,
        "the training set ({n_train} images) is smaller than one batch ({}): lower --batch-size or raise --train-subset",
        cfg.batch_size
    );
    let schedule = cfg.schedule(steps_per_epoch);
    schedule.validate().context("learning-rate schedule")?;
    let mut epochs = Vec::new();
    let mut totals = StageTimes::default();
    let mut step = 0usize;
    let mut train_seconds = 0.0;
    for epoch in 0..cfg.epochs {
        let plan = BatchPlan::train(n_train, cfg.batch_size, cfg.seed, epoch);
        obs.epoch_started(epoch, plan.len());
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for b in 0..plan.len() {
            opt.set_learning_rate(schedule.at(step));
            let aug = data.augment.then_some((cfg.seed, epoch, b));
            let batch = make_batch(&data.train, plan.indices(b), &data.norm, aug, device)?;
            // A stream of its own: at step 0 the seed must not equal the model-init seed.
            let fisher_seed = cfg.seed
                ^ (step as u64)
                    .wrapping_add(1)
                    .wrapping_mul(0xA24B_AED4_963E_E407);
            match train_step(net, opt, &batch, fisher_seed)? {
                StepOutcome::Diverged { loss } => {
                    return Ok(RunSummary {
                        epochs,
                        outcome: Outcome::Diverged { step, loss },
                        steps: step,
                        mean_stage_times: totals.scaled(1.0 / step.max(1) as f64),
                    });
                }
                StepOutcome::Done {
                    loss,
                    correct: c,
                    times,
                } => {
                    totals.add(&times);
                    loss_sum += loss * batch.labels.len() as f64;
                    correct += c;
                    seen += batch.labels.len();
                    obs.step_done(b, loss);
                }
            }
            step += 1;
        }
        let epoch_seconds = started.elapsed().as_secs_f64();
        train_seconds += epoch_seconds;
        let test = evaluate(net, &data.test, &data.norm, cfg.eval_batch_size, device)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            train_seconds,
            images_per_second: seen as f64 / epoch_seconds,
            learning_rate: opt.learning_rate(),
        };
        obs.epoch_done(&m);
        epochs.push(m);
    }
    Ok(RunSummary {
        epochs,
        outcome: Outcome::Finished,
        steps: step,
        mean_stage_times: totals.scaled(1.0 / step.max(1) as f64),
    })
}
