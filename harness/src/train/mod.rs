//! The training loop: epochs of seeded mini-batches, per-stage timing of every step,
//! evaluation on the validation (when held out) and test splits after each epoch, divergence
//! detection.

mod config;
pub mod distributed;
mod eval;
mod identity;
pub mod loop_settings;
pub mod loss;
pub mod machine_load;
mod step;
pub mod times;

pub use config::{default_dataset, TrainConfig};
pub use eval::{evaluate, Evaluation};
pub use identity::{run_key, settings_json, stable_key};
pub use loop_settings::LoopSettings;
pub use step::{train_step, StepJob, StepOutcome};
pub use times::StepTimes;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use models::{ModelConfig, Network};
use optimizers::{Communicator, Local, Optimizer, Traffic};

use crate::data::{loader::make_shard, BatchPlan, Splits};

/// Metrics at the end of one epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// On the validation split, where the run holds one out.
    #[serde(default)]
    pub validation_loss: Option<f64>,
    #[serde(default)]
    pub validation_accuracy: Option<f64>,
    /// Training wall-clock seconds since the start of the run, evaluation excluded.
    pub train_seconds: f64,
    /// Training images per second in this epoch.
    pub images_per_second: f64,
    pub learning_rate: f64,
    /// This epoch's training wall seconds, and the process's CPU seconds (all threads, user
    /// and system) over the same span: on a machine shared with other work, the CPU seconds
    /// fall behind wall seconds × threads.
    #[serde(default)]
    pub epoch_seconds: f64,
    #[serde(default)]
    pub cpu_seconds: f64,
    /// The machine's mean 1-minute load average while the epoch trained; `None` where the
    /// system has none to read.
    #[serde(default)]
    pub load_average: Option<f64>,
    /// Seconds of the speed probe timed before the epoch ([`machine_load::speed_probe`]).
    #[serde(default)]
    pub probe_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Outcome {
    Finished,
    /// The loss became NaN or infinite at this (0-based, global) step.
    Diverged {
        step: usize,
        loss: f64,
    },
    /// The observer asked to stop (Ctrl-C) after this many steps; the run can be resumed.
    Interrupted {
        step: usize,
    },
    /// The observer paused the run after this many finished epochs ([`Observer::pause_after_epoch`]);
    /// it goes on from the checkpoint its `epoch_done` wrote.
    Paused {
        epochs: usize,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub epochs: Vec<EpochMetrics>,
    pub outcome: Outcome,
    pub steps: usize,
    /// Mean seconds per step in each stage.
    pub mean_stage_times: StepTimes,
}

/// Where a run stands between two steps: with the model's and the optimizer's state, enough
/// to continue bit-exactly (the data order and augmentation derive from seed, epoch and batch).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Current epoch, 0-based.
    pub epoch: usize,
    /// Next batch of the current epoch.
    pub batch: usize,
    /// Steps taken in all.
    pub step: usize,
    /// Training seconds of the finished epochs.
    pub train_seconds: f64,
    /// The current epoch so far.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    pub epoch_seconds: f64,
    /// The process's CPU seconds over the same spans as `epoch_seconds`, and the load-average
    /// readings so far. Defaulted: checkpoints from before they existed still load.
    #[serde(default)]
    pub epoch_cpu_seconds: f64,
    #[serde(default)]
    pub epoch_load_sum: f64,
    #[serde(default)]
    pub epoch_load_samples: usize,
    /// The current epoch's speed probe, once timed (again after a resume without one).
    #[serde(default)]
    pub epoch_probe_seconds: Option<f64>,
    /// Sums of the stage times of every step so far.
    pub totals: StepTimes,
    pub epochs: Vec<EpochMetrics>,
}

/// One logged step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub times: StepTimes,
    /// Collective calls of a data-parallel step (zero alone).
    pub traffic: Traffic,
}

/// The run at a step boundary, for an observer that checkpoints.
pub struct RunState<'a> {
    pub progress: &'a Progress,
    pub net: &'a Network,
    pub opt: &'a dyn Optimizer,
}

/// What the caller sees while a run goes on. Errors from an observer end the run.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    fn step_done(&mut self, _step_in_epoch: usize, _rec: &StepRecord) -> Result<()> {
        Ok(())
    }
    fn epoch_done(&mut self, _m: &EpochMetrics, _state: &RunState<'_>) -> Result<()> {
        Ok(())
    }
    /// Checked after every step; `true` ends the run as [`Outcome::Interrupted`] after
    /// [`Observer::interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
    fn interrupted(&mut self, _state: &RunState<'_>) -> Result<()> {
        Ok(())
    }
    /// Checked after every epoch but the last, once [`Observer::epoch_done`] has seen it;
    /// `true` ends the call as [`Outcome::Paused`] (a sweep taking turns between its runs).
    fn pause_after_epoch(&self) -> bool {
        false
    }
}

/// An observer that does nothing (tests, benchmarks).
pub struct Silent;
impl Observer for Silent {}

/// Builds the model and optimizer for `cfg` and trains on `data`, alone.
pub fn run(cfg: &TrainConfig, data: &Splits, obs: &mut dyn Observer) -> Result<RunSummary> {
    let device = Device::Cpu;
    let (net, mut opt) = build_run(cfg, data, &device, Arc::new(Local))?;
    let learner = Learner::alone(&net, opt.as_mut(), &device);
    train(cfg, data, learner, obs, Progress::default())
}

/// The model and optimizer `cfg` names, shaped for `data`, the optimizer reaching the other
/// processes of its job through `comm` ([`Local`] alone).
pub fn build_run(
    cfg: &TrainConfig,
    data: &Splits,
    device: &Device,
    comm: Arc<dyn Communicator>,
) -> Result<(Network, Box<dyn Optimizer>)> {
    let net = build_model(cfg, data, device)?;
    let mut opt = optimizers::build(cfg.optimizer, &net.param_set(), &cfg.hyper)?;
    opt.set_communicator(comm);
    Ok((net, opt))
}

/// The network `cfg` names, shaped for `data`.
pub fn build_model(cfg: &TrainConfig, data: &Splits, device: &Device) -> Result<Network> {
    let t = &data.train;
    let model_cfg = ModelConfig {
        input: (t.height, t.width, t.channels),
        classes: t.classes,
        seed: cfg.hyper.seed,
    };
    Ok(models::build(&cfg.model, &model_cfg, device)?)
}

/// What a run trains, and where: the model and its optimizer on a device, in a job of
/// processes ([`Local`] alone). In a job the optimizer must hold the same `comm`
/// ([`Optimizer::set_communicator`]).
pub struct Learner<'a> {
    pub net: &'a Network,
    pub opt: &'a mut dyn Optimizer,
    pub device: &'a Device,
    pub comm: &'a dyn Communicator,
}

impl<'a> Learner<'a> {
    /// `net` and `opt` on `device`, in one process.
    pub fn alone(net: &'a Network, opt: &'a mut dyn Optimizer, device: &'a Device) -> Self {
        Learner {
            net,
            opt,
            device,
            comm: &Local,
        }
    }
}

fn summary(p: &Progress, outcome: Outcome) -> RunSummary {
    RunSummary {
        epochs: p.epochs.clone(),
        outcome,
        steps: p.step,
        mean_stage_times: p.totals.scaled(1.0 / p.step.max(1) as f64),
    }
}

/// Trains for `cfg.epochs` epochs from `p` (`Progress::default()` for a new run; otherwise the
/// model and optimizer are restored to the same step boundary). In a data-parallel job every
/// process walks the same global batches and trains on its equal shard of each; metrics are
/// global.
pub fn train(
    cfg: &TrainConfig,
    data: &Splits,
    learner: Learner,
    obs: &mut dyn Observer,
    mut p: Progress,
) -> Result<RunSummary> {
    let Learner {
        net,
        opt,
        device,
        comm,
    } = learner;
    cfg.validate()?;
    let held;
    let (data, validation) = match cfg.validation {
        0 => (data, None),
        n => {
            held = data.hold_out(n)?;
            (&held.0, Some(&held.1))
        }
    };
    let (rank, procs) = (comm.rank(), comm.size());
    anyhow::ensure!(
        cfg.batch_size.is_multiple_of(procs),
        "the batch size {} does not split evenly over {procs} processes: choose a multiple of {procs}",
        cfg.batch_size
    );
    let shard = cfg.batch_size / procs;
    let n_train = cfg
        .train_subset
        .map_or(data.train.len(), |s| s.min(data.train.len()));
    let steps_per_epoch = n_train / cfg.batch_size;
    anyhow::ensure!(
        steps_per_epoch > 0,
        "the training set ({n_train} images) is smaller than one batch ({}): lower --batch-size or raise --train-subset",
        cfg.batch_size
    );
    let schedule = cfg
        .loop_settings
        .lr_schedule(cfg.hyper.lr, cfg.epochs, steps_per_epoch);
    schedule.validate().context("learning-rate schedule")?;
    // The K-FAC family decays its damping itself, counting epochs in these steps.
    opt.set_steps_per_epoch(steps_per_epoch);
    let mut load = machine_load::LoadSampler::default();
    while p.epoch < cfg.epochs {
        let epoch = p.epoch;
        let plan = BatchPlan::train(n_train, cfg.batch_size, cfg.hyper.seed, epoch);
        obs.epoch_started(epoch, plan.len());
        if p.epoch_probe_seconds.is_none() {
            // Outside the timed training, like the evaluation.
            p.epoch_probe_seconds = Some(machine_load::speed_probe());
        }
        while p.batch < plan.len() {
            let b = p.batch;
            let started = Instant::now();
            let cpu_started = machine_load::cpu_seconds();
            let lr = schedule.at(p.step);
            opt.set_learning_rate(lr);
            let aug = data.augment.then_some((cfg.hyper.seed, epoch, b));
            let keep = rank * shard..(rank + 1) * shard;
            let batch = make_shard(&data.train, plan.indices(b), keep, &data.norm, aug, device)?;
            let fisher_seed = models::label_sampling::fisher_seed(cfg.hyper.seed, p.step);
            // Read before the step so that, in a job, the answer travels with its all-reduce.
            let asked_to_stop = obs.should_stop();
            let stop;
            let job = StepJob {
                smoothing: cfg.loop_settings.label_smoothing,
                comm,
                stop: asked_to_stop,
            };
            match train_step(net, opt, &batch, fisher_seed, job)? {
                StepOutcome::Diverged { loss } => {
                    return Ok(summary(&p, Outcome::Diverged { step: p.step, loss }));
                }
                StepOutcome::Done {
                    loss,
                    correct,
                    times,
                    traffic,
                    stop: any_stop,
                } => {
                    // Alone, a Ctrl-C during this step stops right after it.
                    stop = any_stop || (procs == 1 && obs.should_stop());
                    p.totals.add(&times);
                    p.epoch_loss_sum += loss * cfg.batch_size as f64;
                    p.epoch_correct += correct;
                    p.epoch_seen += cfg.batch_size;
                    let rec = StepRecord {
                        epoch,
                        step: p.step,
                        loss,
                        lr,
                        times,
                        traffic,
                    };
                    p.step += 1;
                    p.batch += 1;
                    p.epoch_seconds += started.elapsed().as_secs_f64();
                    p.epoch_cpu_seconds += machine_load::cpu_seconds() - cpu_started;
                    load.sample(&mut p.epoch_load_sum, &mut p.epoch_load_samples);
                    obs.step_done(b, &rec)?;
                }
            }
            if stop {
                // The checkpoint holds one model: every process's running statistics averaged.
                distributed::sync_buffers(net, comm)?;
                obs.interrupted(&RunState {
                    progress: &p,
                    net,
                    opt,
                })?;
                return Ok(summary(&p, Outcome::Interrupted { step: p.step }));
            }
        }
        p.train_seconds += p.epoch_seconds;
        distributed::sync_buffers(net, comm)?;
        let test = evaluate(
            net,
            &data.test,
            &data.norm,
            cfg.eval_batch_size,
            device,
            comm,
        )?;
        let validation = validation
            .map(|v| evaluate(net, v, &data.norm, cfg.eval_batch_size, device, comm))
            .transpose()?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: p.epoch_loss_sum / p.epoch_seen as f64,
            train_accuracy: p.epoch_correct as f64 / p.epoch_seen as f64,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            validation_loss: validation.map(|v| v.loss),
            validation_accuracy: validation.map(|v| v.accuracy),
            train_seconds: p.train_seconds,
            images_per_second: p.epoch_seen as f64 / p.epoch_seconds,
            learning_rate: opt.learning_rate(),
            epoch_seconds: p.epoch_seconds,
            cpu_seconds: p.epoch_cpu_seconds,
            load_average: machine_load::mean_load(p.epoch_load_sum, p.epoch_load_samples),
            probe_seconds: p.epoch_probe_seconds.take(),
        };
        p.epochs.push(m.clone());
        p.epoch += 1;
        p.batch = 0;
        (
            p.epoch_loss_sum,
            p.epoch_correct,
            p.epoch_seen,
            p.epoch_seconds,
            p.epoch_cpu_seconds,
            p.epoch_load_sum,
            p.epoch_load_samples,
        ) = (0.0, 0, 0, 0.0, 0.0, 0.0, 0);
        obs.epoch_done(
            &m,
            &RunState {
                progress: &p,
                net,
                opt,
            },
        )?;
        if p.epoch < cfg.epochs && obs.pause_after_epoch() {
            return Ok(summary(&p, Outcome::Paused { epochs: p.epoch }));
        }
    }
    Ok(summary(&p, Outcome::Finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_from_before_the_machine_load_fields_still_loads() {
        // progress.json as written before the CPU seconds and load average were recorded.
        let old = r#"{"epoch":1,"batch":3,"step":23,"train_seconds":1.5,"epoch_loss_sum":2.0,
            "epoch_correct":5,"epoch_seen":96,"epoch_seconds":0.4,
            "totals":{"forward":0.1,"backward":0.2,"statistics":0.0,"inverse":0.0,
                "precondition":0.0,"communication":0.0,"update":0.05},
            "epochs":[{"epoch":1,"train_loss":1.2,"train_accuracy":0.5,"test_loss":1.3,
                "test_accuracy":0.45,"train_seconds":1.5,"images_per_second":426.7,
                "learning_rate":0.1}]}"#;
        let p: Progress = serde_json::from_str(old).unwrap();
        assert_eq!((p.epoch, p.batch, p.step, p.epoch_seconds), (1, 3, 23, 0.4));
        assert_eq!(
            (p.epoch_cpu_seconds, p.epoch_load_sum, p.epoch_load_samples),
            (0.0, 0.0, 0)
        );
        let e = &p.epochs[0];
        assert_eq!((e.test_accuracy, e.train_seconds), (0.45, 1.5));
        assert_eq!(
            (
                e.epoch_seconds,
                e.cpu_seconds,
                e.load_average,
                e.probe_seconds
            ),
            (0.0, 0.0, None, None)
        );
        assert_eq!(p.epoch_probe_seconds, None);
    }
}
