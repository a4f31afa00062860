//! One training step, timed by stage.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use models::label_sampling::sampled_gradients;
use models::{Ctx, Network};
use optimizers::{Communicator, LayerStats, Local, Optimizer, StatsRequest, Stopwatch, Traffic};

use super::distributed::average_gradients;
use super::times::StepTimes;
use crate::data::Batch;

pub enum StepOutcome {
    /// `loss` and `correct` are over the global batch (all processes).
    Done {
        loss: f64,
        correct: usize,
        times: StepTimes,
        /// Seconds and bytes of this step's collective calls.
        traffic: Traffic,
        /// Whether any process of the job was asked to stop (Ctrl-C) before this step.
        stop: bool,
    },
    /// The loss was NaN or infinite; no update was applied.
    Diverged { loss: f64 },
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    pred.eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()
        .map(|c| c as usize)
}

/// What a step needs besides its model, optimizer and batch: the loss's label smoothing, the
/// processes of its job, and whether this process was asked to stop.
#[derive(Clone, Copy)]
pub struct StepJob<'a> {
    /// The training loss's label smoothing ε.
    pub smoothing: f64,
    /// The job's processes ([`Local`] alone). The optimizer must hold the same for its
    /// statistics ([`Optimizer::set_communicator`]).
    pub comm: &'a dyn Communicator,
    /// This process was asked to stop; in a job it rides along in the gradient all-reduce, so
    /// that every process learns at the same step whether any of them was.
    pub stop: bool,
}

impl StepJob<'static> {
    /// One process, no label smoothing, not stopping.
    pub const ALONE: StepJob<'static> = StepJob {
        smoothing: 0.0,
        comm: &Local,
        stop: false,
    };
}

/// Forward, backward, statistics (when the optimizer asks) and the optimizer's update.
/// `fisher_seed` seeds the labels sampled for the true Fisher. In a data-parallel job `batch`
/// is this process's equal shard of the global batch, and the gradients are averaged over the
/// processes (one fused all-reduce, timed as communication) before the optimizer steps, so
/// every process applies the same update.
pub fn train_step(
    net: &Network,
    opt: &mut dyn Optimizer,
    batch: &Batch,
    fisher_seed: u64,
    job: StepJob,
) -> Result<StepOutcome> {
    // On a pool worker every parallel op shares its work with the calling thread.
    crate::threads::on_pool(|| step_here(net, opt, batch, fisher_seed, job))
}

fn step_here(
    net: &Network,
    opt: &mut dyn Optimizer,
    batch: &Batch,
    fisher_seed: u64,
    job: StepJob,
) -> Result<StepOutcome> {
    let StepJob {
        smoothing,
        comm,
        stop,
    } = job;
    // Whatever ran between steps (evaluation) is not this step's traffic.
    comm.take_traffic();
    // Every step the harness takes is timed, stage by stage, however the optimizer was built.
    opt.set_timing(true);
    let req = opt.stats_request();
    let ctx = if req == StatsRequest::None {
        Ctx::TRAIN
    } else {
        Ctx::CAPTURE
    };
    let mut sw = Stopwatch::start(batch.x.device());
    let logits = net.forward(&batch.x, &ctx)?;
    let loss = super::loss::cross_entropy(&logits, &batch.y, smoothing)?;
    let mut loss_value = loss.to_scalar::<f32>()? as f64;
    let forward = sw.lap();
    let shared = comm.size() > 1;
    // Alone, a diverged loss stops the step here; in a job every process must still join the
    // all-reduce below, which then tells all of them alike.
    if !loss_value.is_finite() && !shared {
        net.clear_stats();
        return Ok(StepOutcome::Diverged { loss: loss_value });
    }
    let mut grads = loss.backward()?;
    let backward = sw.lap();
    let mut correct = count_correct(&logits, &batch.y)?;
    let mut stop = stop;
    // The whole exchange, packing the gradients into one buffer and back included.
    let mut gradient_exchange = 0.0;
    if shared {
        let params = net.param_set().all();
        (loss_value, correct, stop) =
            average_gradients(&mut grads, &params, loss_value, correct, stop, comm)?;
        gradient_exchange = sw.lap();
        if !loss_value.is_finite() {
            net.clear_stats();
            return Ok(StepOutcome::Diverged { loss: loss_value });
        }
    }
    let stats: Option<Vec<LayerStats>> = match req {
        StatsRequest::None => None,
        StatsRequest::Empirical => Some(net.take_stats(&grads)?),
        StatsRequest::Sampled => {
            // G from the loss on labels drawn from the model's own predictive distribution.
            let first_row = comm.rank() * batch.labels.len();
            Some(net.take_stats(&sampled_gradients(&logits, fisher_seed, first_row)?)?)
        }
    };
    let statistics = sw.lap();
    let mut times = StepTimes::around(forward, backward, &opt.step(&grads, stats.as_deref())?);
    let traffic = comm.take_traffic();
    // The optimizer timed its statistics exchange as part of its statistics stage, and the
    // sharing of its inverses as part of its inverse stage.
    times.statistics = (times.statistics + statistics - traffic.statistics_seconds).max(0.0);
    times.inverse = (times.inverse - traffic.inverse_seconds).max(0.0);
    times.communication = gradient_exchange + traffic.statistics_seconds + traffic.inverse_seconds;
    Ok(StepOutcome::Done {
        loss: loss_value,
        correct,
        times,
        traffic,
        stop,
    })
}
