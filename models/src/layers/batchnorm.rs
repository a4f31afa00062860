use candle_core::{Result, Tensor, Var, D};

use crate::network::{Ctx, Module};

/// Batch normalisation over the channel (last) axis of an NHWC tensor (or `[M, C]` rows).
/// Training uses the batch statistics and updates the running ones (momentum 0.1, unbiased
/// variance, as PyTorch); evaluation uses the running statistics.
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

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let c = x.dim(D::Minus1)?;
        let shape = x.shape().clone();
        let rows = x.reshape(((), c))?;
        let (centred, var) = if ctx.train {
            let mean = rows.mean_keepdim(0)?;
            let centred = rows.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(0)?;
            let r = rows.dim(0)? as f64;
            let unbiased = (var.detach() * (r / (r - 1.0).max(1.0)))?.squeeze(0)?;
            let m = self.momentum;
            self.running_mean.set(
                &((self.running_mean.as_tensor() * (1.0 - m))? + (mean.detach().squeeze(0)? * m)?)?,
            )?;
            self.running_var
                .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
            (centred, var)
        } else {
            (
                rows.broadcast_sub(&self.running_mean.as_tensor().detach().unsqueeze(0)?)?,
                self.running_var.as_tensor().detach().unsqueeze(0)?,
            )
        };
        let inv_std = (var + self.eps)?.sqrt()?.recip()?;
        let scale = inv_std.broadcast_mul(&ctx.param(&self.gamma).unsqueeze(0)?)?;
        let y = centred
            .broadcast_mul(&scale)?
            .broadcast_add(&ctx.param(&self.beta).unsqueeze(0)?)?;
        y.reshape(shape)
    }
}
