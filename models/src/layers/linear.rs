use std::sync::Arc;

use candle_core::{Result, Tensor, Var};

use crate::capture::Capture;
use crate::module::{Ctx, Module};
use crate::ops::matmul_t;

/// `y = x Wᵀ + b` on rows `[M, in]`, giving `[M, out]`; the weight is `[out, in]`, the bias
/// (if any) `[out]`. Made by [`crate::Builder::linear`]. A capturing pass records `A = x` and
/// attaches the `G` probe (one position per example).
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
    capture: Arc<Capture>,
}

impl Linear {
    pub(crate) fn new(weight: Var, bias: Option<Var>, capture: Arc<Capture>) -> Self {
        Linear {
            weight,
            bias,
            capture,
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut s = matmul_t(x, &ctx.param(&self.weight))?;
        if let Some(b) = &self.bias {
            s = s.broadcast_add(&ctx.param(b))?;
        }
        if ctx.capture {
            s = self.capture.attach(&s, x, x.dim(0)?, 1)?;
        }
        Ok(s)
    }
}
