//! One training step, timed by stage.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use candle_nn::loss::cross_entropy;
use models::{Ctx, Network};
use optimizers::{LayerStats, Optimizer, StageTimes, StatsRequest, Stopwatch};

use super::fisher::sample_labels;
use crate::data::Batch;

pub enum StepOutcome {
    Done {
        loss: f64,
        correct: usize,
        times: StageTimes,
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

/// Forward, backward, statistics (when the optimizer asks) and the optimizer's update.
/// `fisher_seed` seeds the labels sampled for the true Fisher.
pub fn train_step(
    net: &Network,
    opt: &mut dyn Optimizer,
    batch: &Batch,
    fisher_seed: u64,
) -> Result<StepOutcome> {
    let req = opt.stats_request();
    let ctx = if req == StatsRequest::None {
        Ctx::TRAIN
    } else {
        Ctx::CAPTURE
    };
    let mut sw = Stopwatch::start();
    let logits = net.forward(&batch.x, &ctx)?;
    let loss = cross_entropy(&logits, &batch.y)?;
    let loss_value = loss.to_scalar::<f32>()? as f64;
    let forward = sw.lap();
    if !loss_value.is_finite() {
        net.clear_stats();
        return Ok(StepOutcome::Diverged { loss: loss_value });
    }
    let grads = loss.backward()?;
    let backward = sw.lap();
    let stats: Option<Vec<LayerStats>> = match req {
        StatsRequest::None => None,
        StatsRequest::Empirical => Some(net.take_stats(&grads)?),
        StatsRequest::Sampled => {
            // G from the loss on labels drawn from the model's own predictive distribution.
            let sampled = sample_labels(&logits.detach(), fisher_seed)?;
            let fisher_grads = cross_entropy(&logits, &sampled)?.backward()?;
            Some(net.take_stats(&fisher_grads)?)
        }
    };
    let statistics = sw.lap();
    let correct = count_correct(&logits, &batch.y)?;
    let mut times = opt.step(&grads, stats.as_deref())?;
    times.forward = forward;
    times.backward = backward;
    times.statistics += statistics;
    Ok(StepOutcome::Done {
        loss: loss_value,
        correct,
        times,
    })
}
