use candle_core::{Result, Tensor, Var, D};

use crate::module::{Ctx, Module};
use crate::ops::{batch_norm, batch_norm_relu, relu, Moments};

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
        }
    }
}

impl BatchNorm {
    /// Moves the running statistics toward a batch's (unbiased variance, as PyTorch).
    fn update_running(&self, batch: &Moments) -> Result<()> {
        let (m, r) = (self.momentum, batch.rows as f64);
        let dtype = self.running_mean.dtype();
        let mean = batch.mean.to_dtype(dtype)?;
        let unbiased = (batch.var.to_dtype(dtype)? * (r / (r - 1.0).max(1.0)))?;
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)
    }
}

impl BatchNorm {
    /// `max(bn(x), 0)`: in training one fused op ([`batch_norm_relu`]), which saves ReLU's
    /// passes over the activations.
    ///
    /// # Errors
    ///
    /// As [`Module::forward`].
    pub fn forward_relu(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        if ctx.train {
            self.train_forward(x, ctx, true)
        } else {
            relu(&self.forward(x, ctx)?)
        }
    }

    /// Normalised with the batch's statistics (ReLU'd if `relu`); updates the running ones.
    fn train_forward(&self, x: &Tensor, ctx: &Ctx, relu: bool) -> Result<Tensor> {
        let c = x.dim(D::Minus1)?;
        let rows = x.reshape(((), c))?;
        let (gamma, beta) = (ctx.param(&self.gamma), ctx.param(&self.beta));
        let (y, batch) = if relu {
            batch_norm_relu(&rows, &gamma, &beta, self.eps)?
        } else {
            batch_norm(&rows, &gamma, &beta, self.eps)?
        };
        self.update_running(&batch)?;
        y.reshape(x.shape())
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        if ctx.train {
            return self.train_forward(x, ctx, false);
        }
        let c = x.dim(D::Minus1)?;
        let shape = x.shape().clone();
        let rows = x.reshape(((), c))?;
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
