use std::sync::Arc;

use candle_core::{Result, Tensor, Var};

use crate::capture::Capture;
use crate::network::{Ctx, Module};
use crate::ops::{im2col, Window};

/// 2-d convolution on NHWC input as im2col + one matmul. The im2col rows are K-FAC's `A`, and
/// the matmul output rows `[N*Ho*Wo, c_out]` are its pre-activations, already in NHWC order.
pub struct Conv2d {
    /// `[c_out, kh, kw, c_in]`, i.e. `[c_out, kh*kw*c_in]` as a matrix.
    weight: Var,
    bias: Option<Var>,
    win: Window,
    capture: Arc<Capture>,
}

impl Conv2d {
    pub(crate) fn new(weight: Var, bias: Option<Var>, win: Window, capture: Arc<Capture>) -> Self {
        Conv2d {
            weight,
            bias,
            win,
            capture,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let (c_out, kh, kw, c_in) = self.weight.as_tensor().dims4()?;
        if c != c_in {
            candle_core::bail!("conv2d: input has {c} channels, the layer expects {c_in}");
        }
        let Some((ho, wo)) = self.win.output(h, w) else {
            candle_core::bail!("conv2d: window {:?} does not fit a {h}x{w} input", self.win);
        };
        let k = kh * kw * c_in;
        let rows = n * ho * wo;
        let a = if kh == 1 && kw == 1 && self.win.stride == 1 && self.win.padding == 0 {
            x.reshape((rows, k))?
        } else {
            im2col(x, self.win)?.reshape((rows, k))?
        };
        let w2 = ctx.param(&self.weight).reshape((c_out, k))?;
        let mut s = a.matmul(&w2.t()?)?;
        if let Some(b) = &self.bias {
            s = s.broadcast_add(&ctx.param(b))?;
        }
        if ctx.capture {
            s = self.capture.attach(&s, &a, n, ho * wo)?;
        }
        s.reshape((n, ho, wo, c_out))
    }
}
