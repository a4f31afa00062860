//! Evaluation on a held-out split, in inference mode.

use anyhow::Result;
use candle_core::Device;
use candle_nn::loss::cross_entropy;
use models::{Ctx, Network};
use optimizers::{Channel, Communicator};

use super::step::count_correct;
use crate::data::{loader::make_batch, BatchPlan, ImageSet, Normalisation};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// The loss and accuracy of `net` on `set`. In a data-parallel job the batches are split over
/// the processes (process `r` takes batches `r, r + P, ...`) and every process gets the totals;
/// alone, `comm` is [`optimizers::Local`].
pub fn evaluate(
    net: &Network,
    set: &ImageSet,
    norm: &Normalisation,
    batch_size: usize,
    device: &Device,
    comm: &dyn Communicator,
) -> Result<Evaluation> {
    let plan = BatchPlan::eval(set.len(), batch_size);
    let (mut loss, mut correct) = (0.0, 0usize);
    for b in (comm.rank()..plan.len()).step_by(comm.size()) {
        let batch = make_batch(set, plan.indices(b), norm, None, device)?;
        let (l, c) = crate::threads::on_pool(|| -> Result<(f64, usize)> {
            let logits = net.forward(&batch.x, &Ctx::EVAL)?;
            let l = cross_entropy(&logits, &batch.y)?.to_scalar::<f32>()? as f64;
            Ok((l, count_correct(&logits, &batch.y)?))
        })?;
        loss += l * batch.labels.len() as f64;
        correct += c;
    }
    let mut sums = [loss, correct as f64];
    comm.all_reduce_sum_f64(&mut sums, Channel::Other);
    let (loss, correct) = (sums[0], sums[1].round() as usize);
    Ok(Evaluation {
        loss: loss / set.len() as f64,
        accuracy: correct as f64 / set.len() as f64,
    })
}
