//! `skfac bench-step`: the wall-clock of whole training steps (forward, backward, update) on a
//! random batch, after a warm-up, as the median of several steps. The same measurement as
//! `bench/pytorch_step.py`, so that `bench/compare.sh` can put the two side by side.

use anyhow::Result;
use candle_core::{Device, Tensor};
use models::ops::OpTime;
use models::ModelConfig;
use optimizers::{Hyper, OptimizerKind};

use crate::data::Batch;
use crate::train::{train_step, StepJob, StepOutcome, StepTimes};

/// Median times of one training step.
#[derive(Clone, Debug)]
pub struct StepBench {
    pub median: StepTimes,
    pub median_total: f64,
    pub images_per_second: f64,
    /// With `op_times`: each CPU kernel's wall-clock over the timed steps, largest first.
    pub ops: Vec<OpTime>,
}

/// Input shape and classes the benchmark feeds `model`.
pub fn input_for(model: &str) -> ((usize, usize, usize), usize) {
    match model {
        "mlp" => ((28, 28, 1), 10),
        "resnet50" => ((224, 224, 3), 1000),
        _ => ((32, 32, 3), 10),
    }
}

/// `model` as the benchmarks build it on `device` (seed 0, the input shape of
/// [`input_for`]).
pub fn network(model: &str, device: &Device) -> Result<models::Network> {
    let (input, classes) = input_for(model);
    Ok(models::build(
        model,
        &ModelConfig {
            input,
            classes,
            seed: 0,
        },
        device,
    )?)
}

/// A batch of standard-normal images with labels cycling through the classes, on `dev`: the
/// step time does not depend on the values.
pub fn random_batch(model: &str, batch: usize, dev: &Device) -> Result<Batch> {
    let (input, classes) = input_for(model);
    let x = Tensor::randn(0f32, 1.0, (batch, input.0, input.1, input.2), dev)?;
    let labels: Vec<u8> = (0..batch).map(|i| (i % classes.min(256)) as u8).collect();
    let y = Tensor::from_vec(
        labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
        batch,
        dev,
    )?;
    Ok(Batch { x, y, labels })
}

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times `steps` training steps of `model` with `optimizer` at `batch` on `device` after
/// `warmup` untimed ones, and with `op_times` each CPU kernel over the timed steps. The
/// thread count must have been configured already.
pub fn run(
    device: &Device,
    model: &str,
    optimizer: OptimizerKind,
    (batch, steps, warmup): (usize, usize, usize),
    op_times: bool,
) -> Result<StepBench> {
    anyhow::ensure!(
        batch >= 1 && steps >= 1,
        "the batch size and the step count must be at least 1"
    );
    let net = network(model, device)?;
    let h = Hyper {
        lr: 0.01,
        ..Hyper::default()
    };
    let mut opt = optimizers::build(optimizer, &net.param_set(), &h)?;
    let b = random_batch(model, batch, device)?;
    let mut runs: Vec<StepTimes> = Vec::with_capacity(steps);
    let mut steps_run = || -> Result<()> {
        for i in 0..warmup + steps {
            if op_times && i == warmup {
                models::ops::take_op_times();
                models::ops::record_op_times(true);
            }
            match train_step(&net, opt.as_mut(), &b, i as u64, StepJob::ALONE)? {
                StepOutcome::Done { times, .. } if i >= warmup => runs.push(times),
                StepOutcome::Done { .. } => {}
                StepOutcome::Diverged { loss } => {
                    anyhow::bail!("the benchmark diverged (loss {loss})")
                }
            }
        }
        Ok(())
    };
    let outcome = steps_run();
    // Off on every path: recording is process-wide.
    models::ops::record_op_times(false);
    outcome?;
    let ops = match op_times {
        true => models::ops::take_op_times(),
        false => Vec::new(),
    };
    let median_times = StepTimes::from_values(std::array::from_fn(|k| {
        median(runs.iter().map(|t| t.values()[k]).collect())
    }));
    let total = median(runs.iter().map(|t| t.total()).collect());
    Ok(StepBench {
        median: median_times,
        median_total: total,
        images_per_second: batch as f64 / total,
        ops,
    })
}
