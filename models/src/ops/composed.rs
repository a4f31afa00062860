//! The ops of this module composed from candle's device-generic tensor ops, with the same
//! values and gradients as the CPU kernels: what the networks run on a CUDA device, where those
//! kernels do not exist. Each op dispatches on its input's device
//! ([`optimizers::kernels::native`]); [`optimizers::kernels::composed_ops`] makes the calling
//! thread take this path on the CPU as well, so the tests check the GPU's code against the
//! kernels on every run.

use candle_core::{Result, Tensor};

use super::geometry::Window;

/// `x` along `dim` from `start`, every `stride`-th entry, `count` of them; `x` must hold
/// `start + count·stride` entries there (the padding in [`windows`] sees to it).
fn every(x: &Tensor, dim: usize, start: usize, stride: usize, count: usize) -> Result<Tensor> {
    let x = x.narrow(dim, start, count * stride)?;
    if stride == 1 {
        return Ok(x);
    }
    let mut dims = x.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, stride);
    x.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

/// `x` with `before` and `after` entries of value `fill` added along `dim`.
fn pad(x: &Tensor, dim: usize, before: usize, after: usize, fill: f64) -> Result<Tensor> {
    if fill == 0.0 {
        return x.pad_with_zeros(dim, before, after);
    }
    let block = |len: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = len;
        Tensor::ones(dims, x.dtype(), x.device())?.affine(fill, 0.0)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Tensor::cat(&parts, dim)
}

/// The `kh·kw` shifted views of NHWC `x` a window sees, each `[N, Ho, Wo, C]`, in kernel-row
/// then kernel-column order, with `fill` where the window covers padding.
fn windows(x: &Tensor, win: Window, fill: f64) -> Result<Vec<Tensor>> {
    let (_, h, w, _) = x.dims4()?;
    let Some((ho, wo)) = win.output(h, w) else {
        candle_core::bail!("window {win:?} does not fit a {h}x{w} input");
    };
    let (p, s) = (win.padding, win.stride);
    // Enough trailing entries that every window offset can take `Ho·stride` of them.
    let after_h = p.max((win.kh - 1 + ho * s).saturating_sub(h + p));
    let after_w = p.max((win.kw - 1 + wo * s).saturating_sub(w + p));
    let x = pad(&pad(x, 1, p, after_h, fill)?, 2, p, after_w, fill)?;
    let mut out = Vec::with_capacity(win.kh * win.kw);
    for ki in 0..win.kh {
        let rows = every(&x, 1, ki, s, ho)?;
        for kj in 0..win.kw {
            out.push(every(&rows, 2, kj, s, wo)?);
        }
    }
    Ok(out)
}

/// [`super::im2col`]: the windows side by side along the channels.
pub(crate) fn im2col(x: &Tensor, win: Window) -> Result<Tensor> {
    Tensor::cat(&windows(x, win, 0.0)?, 3)
}

/// [`super::max_pool2d`]: the first maximum of each window, picked by index so that its
/// gradient goes to that one input (candle's own max reduction shares it between ties).
pub(crate) fn max_pool2d(x: &Tensor, win: Window) -> Result<Tensor> {
    // Padding must never win; the lowest f32 is a float in f64 too.
    let stacked = Tensor::stack(&windows(x, win, f64::from(f32::MIN))?, 3)?.contiguous()?;
    let first = stacked.detach().argmax_keepdim(3)?;
    stacked.gather(&first, 3)?.squeeze(3)
}

/// `max(x, 0)` with gradient 0 at 0, as the kernel (candle's `relu` passes it at 0).
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    let positive = x.gt(&x.zeros_like()?)?.to_dtype(x.dtype())?;
    x.mul(&positive)
}

/// [`super::add_relu`].
pub(crate) fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    relu(&(a + b)?)
}

/// Training-mode batch norm of rows `x: [R, C]`: the output and the batch's per-channel mean
/// and biased variance (detached), as [`super::batch_norm`].
pub(crate) fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mean = x.mean(0)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean(0)?;
    let scale = (var.affine(1.0, eps)?.sqrt()?.recip()? * gamma)?;
    let y = centred.broadcast_mul(&scale)?.broadcast_add(beta)?;
    Ok((y, mean.detach(), var.detach()))
}
