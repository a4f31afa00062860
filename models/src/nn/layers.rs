//! candle-nn's `Linear` and `Conv2d`, with their layouts, variable names and initialisation,
//! that also record K-FAC's `A` and `G` on the passes a [`super::Curvature`] asks for. Every
//! other pass is candle-nn's own layer, called as it is.

use std::sync::Arc;

use candle_core::{Result, Tensor};

use super::Shared;
use crate::capture::Capture;
use crate::ops::{im2col, Window};

/// candle-nn's `Linear` (`y = x Wᵀ + b`, weight `[out, in]`, bias `[out]`), on inputs
/// `[M, in]` or `[M, …, in]` (each example's middle positions are its `T` rows of `A`).
pub struct Linear {
    pub(super) inner: candle_nn::Linear,
    pub(super) capture: Arc<Capture>,
    pub(super) shared: Arc<Shared>,
}

/// candle-nn's `Conv2d` on NCHW input `[M, c_in, H, W]` with weight `[c_out, c_in, k, k]`,
/// any padding and stride (dilation and groups 1).
pub struct Conv2d {
    pub(super) inner: candle_nn::Conv2d,
    pub(super) capture: Arc<Capture>,
    pub(super) shared: Arc<Shared>,
}

impl Linear {
    /// The weight, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// The bias, `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl Conv2d {
    /// The weight, `[c_out, c_in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// The bias, `[c_out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        if !self.shared.capturing() {
            return Ok(y);
        }
        // The rows of A and G: one per (example, position), each example's consecutive.
        let (batch, inputs) = (x.dim(0)?, x.dim(candle_core::D::Minus1)?);
        let rows = x.elem_count() / inputs;
        let a = x.reshape((rows, inputs))?;
        let s = y.reshape((rows, ()))?;
        let out = self.capture.attach(&s, &a, batch, rows / batch)?;
        self.shared.record_output(out.reshape(y.shape())?)
    }
}

impl candle_core::Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        if !self.shared.capturing() {
            return Ok(y);
        }
        let (n, c_out, ho, wo) = y.dims4()?;
        let (_, c_in, kh, kw) = self.inner.weight().dims4()?;
        let cfg = self.inner.config();
        let win = Window {
            kh,
            kw,
            stride: cfg.stride,
            padding: cfg.padding,
        };
        let rows = n * ho * wo;
        // im2col runs channel fastest on NHWC; candle-nn's weight runs kernel offset fastest.
        let a = im2col(&x.detach().permute((0, 2, 3, 1))?, win)?
            .reshape((rows, kh, kw, c_in))?
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .reshape((rows, c_in * kh * kw))?;
        let s = y.permute((0, 2, 3, 1))?.reshape((rows, c_out))?;
        let out = self
            .capture
            .attach(&s, &a, n, ho * wo)?
            .reshape((n, ho, wo, c_out))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        self.shared.record_output(out)
    }
}
