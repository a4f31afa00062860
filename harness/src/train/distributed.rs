//! What data-parallel training adds to a step and an epoch: the fused gradient all-reduce
//! (with the loss and the correct count riding along), and agreeing BatchNorm buffers.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use models::Network;
use optimizers::comm::all_reduce_mean;
use optimizers::{Channel, Communicator, NamedVar};

/// Averages every parameter's gradient over the processes in one fused all-reduce, which also
/// carries the shard's mean loss, its correct count and whether this process was asked to
/// stop. Returns the global mean loss, the global correct count and whether any process was
/// asked to stop. Parameters without a gradient are skipped alike on every process (same
/// graph).
pub fn average_gradients(
    grads: &mut GradStore,
    params: &[NamedVar],
    local_loss: f64,
    local_correct: usize,
    stop: bool,
    comm: &dyn Communicator,
) -> Result<(f64, usize, bool)> {
    let p = comm.size() as f32;
    let mut parts: Vec<(usize, Tensor)> = Vec::with_capacity(params.len());
    let mut len = 0;
    for (i, nv) in params.iter().enumerate() {
        if let Some(g) = grads.get(&nv.var) {
            let g = g.flatten_all()?.to_dtype(DType::F32)?;
            len += g.dim(0)?;
            parts.push((i, g));
        }
    }
    let mut buf: Vec<f32> = Vec::with_capacity(len + 3);
    for (_, g) in &parts {
        buf.extend_from_slice(&g.to_vec1::<f32>()?);
    }
    // Equal shards: the global mean loss is the mean of the shards' means.
    buf.push(local_loss as f32);
    buf.push(local_correct as f32);
    buf.push(f32::from(u8::from(stop)));
    comm.all_reduce_sum_f32(&mut buf, Channel::Gradients);
    let mut at = 0;
    for (i, g) in parts {
        let var = &params[i].var;
        let n = g.dim(0)?;
        let mean: Vec<f32> = buf[at..at + n].iter().map(|x| x / p).collect();
        at += n;
        let t = Tensor::from_vec(mean, var.shape(), var.device())?.to_dtype(var.dtype())?;
        grads.insert(var.as_tensor(), t);
    }
    Ok((
        (buf[at] / p) as f64,
        buf[at + 1].round() as usize,
        buf[at + 2] > 0.0,
    ))
}

/// Makes every process's BatchNorm running statistics their mean, so that evaluation and
/// checkpoints see one model (each process saw only its shard's batch statistics).
pub fn sync_buffers(net: &Network, comm: &dyn Communicator) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    for b in net.buffers() {
        let mean = all_reduce_mean(comm, b.var.as_tensor(), Channel::Other)?;
        b.var.set(&mean)?;
    }
    Ok(())
}
