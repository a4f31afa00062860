use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor, Var, D};

use crate::module::{Ctx, Module};
use crate::ops::{batch_norm_train, BatchStats};

/// Batch normalisation over the channel (last) axis of an NHWC tensor (or `[M, C]` rows).
/// Training uses the batch statistics and updates the running ones (momentum 0.1, unbiased
/// variance, as PyTorch); evaluation uses the running statistics. ε is 1e-5. Made by
/// [`crate::Builder::batchnorm`].
pub struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
    /// Filled by each training forward pass, for the running statistics.
    batch: Arc<Mutex<BatchStats>>,
}

impl BatchNorm {
    pub(crate) fn new(gamma: Var, beta: Var, running_mean: Var, running_var: Var) -> Self {
        BatchNorm {
            gamma,
            beta,
            running_mean,
            running_var,
            eps: 1e-5,
            momentum: 0.1,
            batch: Arc::default(),
        }
    }
}

impl BatchNorm {
    /// Moves the running statistics toward the last batch's (unbiased variance, as PyTorch).
    fn update_running(&self) -> Result<()> {
        let st = self
            .batch
            .lock()
            .expect("batch-norm statistics lock")
            .clone();
        let (m, r) = (self.momentum, st.rows as f64);
        let dev = self.running_mean.device();
        let dtype = self.running_mean.dtype();
        let mean = Tensor::from_vec(st.mean, st.var.len(), dev)?.to_dtype(dtype)?;
        let unbiased = (Tensor::from_vec(st.var, mean.elem_count(), dev)?.to_dtype(dtype)?
            * (r / (r - 1.0).max(1.0)))?;
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let c = x.dim(D::Minus1)?;
        let shape = x.shape().clone();
        let rows = x.reshape(((), c))?;
        if ctx.train {
            let y = batch_norm_train(
                &rows,
                &ctx.param(&self.gamma),
                &ctx.param(&self.beta),
                self.eps,
                &self.batch,
            )?;
            self.update_running()?;
            return y.reshape(shape);
        }
        let centred = rows.broadcast_sub(&self.running_mean.as_tensor().detach().unsqueeze(0)?)?;
        let var = self.running_var.as_tensor().detach().unsqueeze(0)?;
        let inv_std = (var + self.eps)?.sqrt()?.recip()?;
        let scale = inv_std.broadcast_mul(&ctx.param(&self.gamma).unsqueeze(0)?)?;
        let y = centred
            .broadcast_mul(&scale)?
            .broadcast_add(&ctx.param(&self.beta).unsqueeze(0)?)?;
        y.reshape(shape)
    }
}
