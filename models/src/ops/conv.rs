//! Convolution without materialising im2col, in cache-sized pieces of work.
//!
//! Materialising the whole im2col matrix writes `kh·kw` copies of the input to memory and
//! reads them back for the GEMM (19 MB per 3×3, 16-channel ResNet layer at batch 32, 75 MB at
//! batch 128), and its gradient as large again before col2im folds it up: the small-channel
//! layers ran at memory speed. Here the forward pass and the weight gradient are GEMMs over
//! shifted views of a padded copy of a few input rows (`shifted.rs`), with no patches at all;
//! so is the input gradient of stride-1 windows. A strided window's input gradient (whose
//! shifted form would mostly multiply zeros) multiplies a tile of a few hundred pixels'
//! output gradient by the weight into patch gradients that stay in cache and folds them into
//! the image straight away. Nothing of im2col's size is ever stored. On small images, where
//! much of im2col is padding, the products skip the padding instead (`valid_taps.rs`).
//!
//! Layout: input `[N, H, W, C]`, weight `[c_out, kh·kw·C]` (columns in im2col order), output
//! `[N·Ho·Wo, c_out]` (NHWC rows).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::cpu::{flat, float_dispatch, matmul_into};
use super::geometry::{ConvGeom, Window};
use super::im2col::{add_patch, im2col};
use super::native;
use super::op_times::{dims_text, timed};
use super::shifted;
use super::valid_taps;

/// Bytes of patch gradients one task holds at a time: half a Zen 3 / Skylake L2.
const TILE_BYTES: usize = 256 * 1024;

/// Whether [`conv2d_tiled`] beats materialising im2col for this layer (f32): every band of
/// work multiplies the whole weight, so the weight must be at most half a cache tile (half an
/// L2), and there must be tiles enough for every thread.
/// That holds for the small-channel layers whose im2col is largest (ResNet's 16- and
/// 32-channel stages); the wide layers (VGG's 512 channels: 9 MB of weight for 2×2 images)
/// are GEMM-bound and run faster as one large matmul.
pub fn tiling_pays(pixels: usize, patch_len: usize, c_out: usize) -> bool {
    let bytes = std::mem::size_of::<f32>();
    let tile = (TILE_BYTES / (patch_len.max(1) * bytes)).clamp(16, 4096);
    c_out * patch_len * bytes <= TILE_BYTES / 2 && pixels >= 2 * tile * rayon::current_num_threads()
}

/// `x ⊛ w` for NHWC `x: [N, H, W, C]` and `w: [c_out, kh·kw·C]` (columns in im2col order:
/// kernel row, kernel column, channel), as rows `[N·Ho·Wo, c_out]`; differentiable in both
/// (in `x` only if `x` itself needs a gradient). Over shifted views of padded input rows.
///
/// # Errors
///
/// When `x` is not 4-d, `w` does not match its channels and `win`, `win` does not fit the
/// input or the dtype is not f32/f64.
pub fn conv2d_tiled(x: &Tensor, w: &Tensor, win: Window) -> Result<Tensor> {
    apply(x, w, win, Method::Shifted)
}

/// The same convolution as [`conv2d_tiled`], multiplying none of the zeros a window covers at
/// the border (`valid_taps.rs`): for small images, where [`valid_taps_pay`].
///
/// # Errors
///
/// As [`conv2d_tiled`].
pub fn conv2d_valid_taps(x: &Tensor, w: &Tensor, win: Window) -> Result<Tensor> {
    apply(x, w, win, Method::ValidTaps)
}

/// Whether [`conv2d_valid_taps`] beats one matmul over im2col for `win` over an `h × w`
/// input: when a tenth or more of im2col is padding (3×3 windows with padding 1 on images of
/// 8×8 or smaller). Below that, the gathering and the many smaller products cost more than
/// the zeros.
pub fn valid_taps_pay(win: Window, h: usize, w: usize) -> bool {
    valid_taps::padding_share(win, h, w) >= 0.1
}

fn apply(x: &Tensor, w: &Tensor, win: Window, method: Method) -> Result<Tensor> {
    if !native(x) {
        // Off the CPU kernels: im2col and one matmul (cuBLAS on a GPU).
        let cols = im2col(x, win)?;
        let (n, ho, wo, k) = cols.dims4()?;
        return cols.reshape((n * ho * wo, k))?.matmul(&w.t()?);
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        TiledConv {
            win,
            method,
            input_grad: x.track_op(),
        },
    )
}

/// How [`TiledConv`] computes its products.
#[derive(Clone, Copy)]
enum Method {
    /// GEMMs over shifted views of padded input rows (`shifted.rs`).
    Shifted,
    /// GEMMs per class of positions sharing the taps inside the input (`valid_taps.rs`).
    ValidTaps,
}

struct TiledConv {
    win: Window,
    method: Method,
    /// Whether the input needs a gradient (not the network's input images).
    input_grad: bool,
}

/// `dX`: per image, each tile's patch gradients `dy_tile · w` folded into the image.
fn input_grad<T: WithDType>(dy: &[T], wt: &[T], g: ConvGeom) -> Vec<T> {
    // Output pixels per tile: a tile's patches fill about TILE_BYTES.
    let tile = (TILE_BYTES / (g.k * std::mem::size_of::<T>())).clamp(16, 4096);
    let per_img = g.ho * g.wo;
    let mut dx = vec![T::zero(); g.n * g.h * g.w * g.c];
    dx.par_chunks_mut(g.h * g.w * g.c)
        .enumerate()
        .for_each(|(b, img)| {
            let mut dcols = vec![T::zero(); tile.min(per_img) * g.k];
            for first in (0..per_img).step_by(tile) {
                let rows = tile.min(per_img - first);
                let dy_t = &dy[(b * per_img + first) * g.c_out..][..rows * g.c_out];
                // dcols = dy_t · w: dy_t is [rows, c_out], w is [c_out, k], both row-major.
                matmul_into(
                    &mut dcols,
                    (g.k, 1),
                    (rows, g.k, g.c_out),
                    false,
                    dy_t,
                    (g.c_out, 1),
                    wt,
                    (g.k, 1),
                );
                for (i, patch) in dcols[..rows * g.k].chunks_exact(g.k).enumerate() {
                    let q = first + i;
                    add_patch(img, g.win, (g.h, g.w, g.c), (q / g.wo, q % g.wo), patch);
                }
            }
        });
    dx
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    match *l.shape().dims() {
        [a, b, c, d] => Ok((a, b, c, d)),
        ref d => candle_core::bail!("conv2d: expected a 4-d NHWC input, got shape {d:?}"),
    }
}

impl CustomOp2 for TiledConv {
    fn name(&self) -> &'static str {
        "conv2d-tiled"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeom::new(self.win, dims4(l1)?, l2.shape().dims())?;
        let out = timed("conv2d forward", (|| shape_text(g), flops(g)), || {
            Ok(float_dispatch!("conv2d", s1, |T| {
                let (x, w) = (flat(s1, l1, "conv2d")?, flat(s2, l2, "conv2d")?);
                match self.method {
                    Method::Shifted => shifted::forward::<T>(x, w, g.win, g.dims(), g.c_out),
                    Method::ValidTaps => valid_taps::forward::<T>(x, w, g),
                }
            }))
        })?;
        Ok((out, Shape::from((g.pixels(), g.c_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (win, m) = (self.win, self.method);
        let dw = x.apply_op2_no_bwd(&grad, &Grad::Weight(win, w.dims2()?.into(), m))?;
        let dx = if self.input_grad {
            Some(grad.apply_op2_no_bwd(w, &Grad::Input(win, x.dims4()?.into(), m))?)
        } else {
            None
        };
        Ok((dx, Some(dw)))
    }
}

/// One half of the backward pass as an op on two tensors.
enum Grad {
    /// `(dy, w) → dX` for an input of these dims.
    Input(Window, [usize; 4], Method),
    /// `(x, dy) → dW` for a weight of these dims.
    Weight(Window, [usize; 2], Method),
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "conv2d-tiled-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "conv2d backward";
        let (g, dy) = match *self {
            Grad::Input(win, [n, h, w, c], _) => (ConvGeom::new(win, (n, h, w, c), l2.dims())?, l1),
            Grad::Weight(win, wd, _) => (ConvGeom::new(win, dims4(l1)?, &wd)?, l2),
        };
        if dy.dims() != [g.pixels(), g.c_out] {
            candle_core::bail!("{OP}: gradient {:?} does not match the layer", dy.shape());
        }
        let (a, b) = (s1, s2);
        let op = match self {
            Grad::Input(..) => "conv2d dX",
            Grad::Weight(..) => "conv2d dW",
        };
        timed(op, (|| shape_text(g), flops(g)), || {
            Ok(match self {
                Grad::Input(_, dims, method) => (
                    float_dispatch!(OP, a, |T| {
                        let (dy, w) = (flat(a, l1, OP)?, flat(b, l2, OP)?);
                        match method {
                            Method::ValidTaps => valid_taps::input_grad::<T>(dy, w, g),
                            Method::Shifted if shifted::fits_input_grad(g.win) => {
                                shifted::input_grad::<T>(dy, w, g.win, g.dims(), g.c_out)
                            }
                            Method::Shifted => input_grad::<T>(dy, w, g),
                        }
                    }),
                    Shape::from(dims.to_vec()),
                ),
                Grad::Weight(_, _, method) => (
                    float_dispatch!(OP, a, |T| {
                        let (x, dy) = (flat(a, l1, OP)?, flat(b, l2, OP)?);
                        match method {
                            Method::Shifted => {
                                shifted::weight_grad::<T>(x, dy, g.win, g.dims(), g.c_out)
                            }
                            Method::ValidTaps => valid_taps::weight_grad::<T>(x, dy, g),
                        }
                    }),
                    Shape::from((g.c_out, g.k)),
                ),
            })
        })
    }
}

/// Operations of the layer's im2col product, `2·pixels·c_out·k`, the same for each pass.
fn flops(g: ConvGeom) -> f64 {
    2.0 * (g.pixels() * g.c_out * g.k) as f64
}

/// A layer as `op_times` lists it: `n×h×w×c → c_out, kh×kw/stride`.
fn shape_text(g: ConvGeom) -> String {
    let (n, h, w, c) = g.dims();
    let (win, hw) = (g.win, dims_text(&[n, h, w, c]));
    format!("{hw} → {}, {}×{}/{}", g.c_out, win.kh, win.kw, win.stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::im2col;
    use candle_core::{Device, Var};

    /// Against the materialised im2col + matmul (itself checked against candle's conv2d and
    /// finite differences in tests/oracles.rs): values and both gradients, in f64 and f32,
    /// with tiles that straddle images and images that span several tiles.
    #[test]
    fn matches_im2col_and_matmul() -> Result<()> {
        let dev = Device::Cpu;
        // Stride 1 runs the shifted-view kernels (`shifted.rs`), the others the patch tiles.
        let wins = [
            (3, 1, 1),
            (5, 1, 2),
            (3, 1, 0),
            (2, 1, 1),
            (3, 2, 1),
            (1, 2, 0),
            (7, 2, 3),
            (2, 2, 0),
            (3, 3, 1),
            (1, 1, 1),
        ];
        // Both methods; small images have mostly border classes for the valid-tap one.
        type Conv = fn(&Tensor, &Tensor, Window) -> Result<Tensor>;
        let methods: [(&str, Conv); 2] =
            [("shifted", conv2d_tiled), ("valid taps", conv2d_valid_taps)];
        let sizes = [(23, 21), (2, 3), (4, 4)];
        let mut all = Vec::new();
        for win in wins {
            for m in methods {
                all.extend(sizes.map(|size| (win, m, size)));
            }
        }
        for ((kk, stride, padding), (name, conv), (h, w)) in all {
            let win = Window {
                kh: kk,
                kw: kk,
                stride,
                padding,
            };
            // 40 channels: tiles of fewer pixels than one image, so dX folds several per image.
            let cases = [
                (candle_core::DType::F64, 5),
                (candle_core::DType::F32, 5),
                (candle_core::DType::F64, 40),
            ];
            for (dtype, c) in cases {
                let (n, c_out) = (3, 6);
                if win.output(h, w).is_none() {
                    continue;
                }
                let x = Var::from_tensor(
                    &Tensor::randn(0f64, 1., (n, h, w, c), &dev)?.to_dtype(dtype)?,
                )?;
                let wt = Var::from_tensor(
                    &Tensor::randn(0f64, 1., (c_out, kk * kk * c), &dev)?.to_dtype(dtype)?,
                )?;
                let ours = conv(x.as_tensor(), wt.as_tensor(), win)?;
                let cols = im2col(x.as_tensor(), win)?;
                let rows = cols.elem_count() / (kk * kk * c);
                let theirs = cols
                    .reshape((rows, kk * kk * c))?
                    .matmul(&wt.as_tensor().t()?)?;
                let up = Tensor::randn(0f64, 1., theirs.shape(), &dev)?.to_dtype(dtype)?;
                let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
                    let d = (a - b)?
                        .abs()?
                        .max_all()?
                        .to_dtype(candle_core::DType::F64)?;
                    let s = b.abs()?.max_all()?.to_dtype(candle_core::DType::F64)?;
                    Ok(d.to_scalar::<f64>()? / s.to_scalar::<f64>()?.max(1.0))
                };
                let tol = if dtype == candle_core::DType::F32 {
                    1e-5
                } else {
                    1e-12
                };
                assert!(
                    diff(&ours, &theirs)? < tol,
                    "{name} forward {win:?} {h}x{w} {dtype:?}"
                );
                let g1 = (ours * &up)?.sum_all()?.backward()?;
                let g2 = (theirs * &up)?.sum_all()?.backward()?;
                for v in [&x, &wt] {
                    let (a, b) = (
                        g1.get(v.as_tensor()).unwrap(),
                        g2.get(v.as_tensor()).unwrap(),
                    );
                    assert!(
                        diff(a, b)? < tol,
                        "{name} gradient {:?} {win:?} {h}x{w} {dtype:?}",
                        v.shape()
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn no_input_gradient_for_an_input_that_needs_none() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 5, 3), &dev)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (4, 27), &dev)?)?;
        let win = Window {
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let grads = conv2d_tiled(&x, w.as_tensor(), win)?
            .sum_all()?
            .backward()?;
        assert!(grads.get(&x).is_none());
        assert!(grads.get(w.as_tensor()).is_some());
        Ok(())
    }
}
