use std::sync::Arc;

use candle_core::{Result, Tensor, Var};

use crate::capture::Capture;
use crate::module::{Ctx, Module};
use crate::ops::{
    conv2d_tiled, conv2d_valid_taps, im2col, matmul_t, tiling_pays, valid_taps_pay, Window,
};

/// 2-d convolution as im2col + matmul: NHWC input `[N, H, W, c_in]` to output
/// `[N, Ho, Wo, c_out]`. The weight is `[c_out, kh, kw, c_in]`, the bias (if any) `[c_out]`.
/// Made by [`crate::Builder::conv`].
///
/// The im2col rows (columns ordered kernel row, kernel column, channel) are K-FAC's `A`, and
/// the matmul output rows `[N*Ho*Wo, c_out]` are its pre-activations, already in NHWC order.
/// On steps that capture statistics the im2col matrix is built whole (it is `A`); otherwise
/// small images, where a tenth or more of it would be padding, skip the padding
/// ([`valid_taps_pay`]), and the layers where that pays ([`tiling_pays`]) never store it
/// (`ops/conv.rs`).
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
        let w2 = ctx.param(&self.weight).reshape((c_out, k))?;
        let pointwise = kh == 1 && kw == 1 && self.win.stride == 1 && self.win.padding == 0;
        let (mut s, a) = if pointwise {
            let a = x.reshape((rows, k))?;
            (matmul_t(&a, &w2)?, Some(a))
        } else if !ctx.capture && valid_taps_pay(self.win, h, w) {
            // Small images: a tenth or more of im2col would be padding.
            (conv2d_valid_taps(x, &w2, self.win)?, None)
        } else if ctx.capture || !tiling_pays(rows, k, c_out) {
            // Statistics steps need the im2col rows themselves (they are K-FAC's `A`), and wide
            // layers run faster as one large matmul.
            let a = im2col(x, self.win)?.reshape((rows, k))?;
            (matmul_t(&a, &w2)?, Some(a))
        } else {
            (conv2d_tiled(x, &w2, self.win)?, None)
        };
        if let Some(b) = &self.bias {
            s = s.broadcast_add(&ctx.param(b))?;
        }
        // Capturing always took a branch above that keeps `a`.
        if let (true, Some(a)) = (ctx.capture, &a) {
            s = self.capture.attach(&s, a, n, ho * wo)?;
        }
        s.reshape((n, ho, wo, c_out))
    }
}
