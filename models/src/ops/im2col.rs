//! im2col for NHWC input: `[N, H, W, C]` → `[N, Ho, Wo, kh*kw*C]`, columns ordered
//! (kernel row, kernel column, channel), zeros where the window covers padding. Its backward is
//! col2im, which sums each patch entry back onto the input pixel it came from.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};

use std::mem::MaybeUninit;

use super::composed;
use super::cpu::{par_fill, run_float, write_copy, Kernel};
use super::native;
use rayon::prelude::*;

use super::geometry::Window;

/// Convolution patches of NHWC `x: [N, H, W, C]` (made contiguous), as
/// `[N, Ho, Wo, kh·kw·C]` with columns ordered kernel row, kernel column, channel and zeros
/// where the window covers padding; differentiable (backward = [`col2im`]).
///
/// # Errors
///
/// When `x` is not 4-d or has no channels, `win` does not fit it or the dtype is not f32/f64.
pub fn im2col(x: &Tensor, win: Window) -> Result<Tensor> {
    if !native(x) {
        return composed::im2col(x, win);
    }
    x.contiguous()?.apply_op1(Im2Col(win))
}

/// Sums patch gradients `[N, Ho, Wo, kh*kw*C]` back onto an `[N, H, W, C]` input: the adjoint
/// of [`im2col`] for an input of height `h` and width `w`. Not differentiable itself.
///
/// # Errors
///
/// When `cols` is not the im2col shape of an `h`×`w` input under `win`, the dtype is not
/// f32/f64 or `cols` is not on the CPU.
pub fn col2im(cols: &Tensor, win: Window, h: usize, w: usize) -> Result<Tensor> {
    cols.contiguous()?.apply_op1_no_bwd(&Col2Im { win, h, w })
}

/// The window columns `kj` whose input column lies inside the image at output column `ox`,
/// and the input column of the first of them; `None` when the window's columns all cover
/// padding. The range is contiguous, since the input column grows with `kj`: those input pixels
/// are consecutive in a row of an NHWC image, and their patch entries consecutive too, so each
/// kernel row moves as one run of `len·C` values instead of `len` runs of `C`.
#[inline]
fn inside(win: Window, ox: usize, w: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let lo = win.padding.saturating_sub(ox * win.stride).min(win.kw);
    let hi = (w + win.padding)
        .saturating_sub(ox * win.stride)
        .clamp(lo, win.kw);
    // ix = ox·stride + kj − padding, which is ≥ 0 from kj = lo on.
    (lo < hi).then(|| (lo..hi, ox * win.stride + lo - win.padding))
}

/// Writes the patch of output pixel `(oy, ox)` of one `[H, W, C]` image: `kh·kw·C` values,
/// zeros where the window covers padding.
#[inline]
fn write_patch<T: WithDType>(
    img: &[T],
    win: Window,
    (h, w, c): (usize, usize, usize),
    (oy, ox): (usize, usize),
    patch: &mut [MaybeUninit<T>],
) {
    let zero = |d: &mut [MaybeUninit<T>]| {
        d.iter_mut().for_each(|d| {
            d.write(T::zero());
        })
    };
    let Some((cols, ix)) = inside(win, ox, w) else {
        zero(patch);
        return;
    };
    for (ki, row) in patch.chunks_exact_mut(win.kw * c).enumerate() {
        let Some(iy) = win.source(oy, ki, h) else {
            // The window's row covers padding.
            zero(row);
            continue;
        };
        let (before, rest) = row.split_at_mut(cols.start * c);
        let (run, after) = rest.split_at_mut(cols.len() * c);
        zero(before);
        zero(after);
        let src = (iy * w + ix) * c;
        write_copy(run, &img[src..src + run.len()]);
    }
}

/// The patches of consecutive output pixels of NHWC `x`, from pixel `first` (counted over the
/// whole batch, so a run may cross images), as many as `cols` holds.
fn write_patches<T: WithDType>(
    x: &[T],
    win: Window,
    (h, w, c): (usize, usize, usize),
    (ho, wo): (usize, usize),
    first: usize,
    cols: &mut [MaybeUninit<T>],
) {
    let k = win.kh * win.kw * c;
    let img_len = h * w * c;
    for (i, patch) in cols.chunks_exact_mut(k).enumerate() {
        let (b, q) = ((first + i) / (ho * wo), (first + i) % (ho * wo));
        let img = &x[b * img_len..(b + 1) * img_len];
        write_patch(img, win, (h, w, c), (q / wo, q % wo), patch);
    }
}

/// Adds the patch gradient of output pixel `(oy, ox)` onto the input pixels it came from in
/// one `[H, W, C]` image (the adjoint of [`write_patch`]).
#[inline]
pub(crate) fn add_patch<T: WithDType>(
    img: &mut [T],
    win: Window,
    (h, w, c): (usize, usize, usize),
    (oy, ox): (usize, usize),
    patch: &[T],
) {
    let Some((cols, ix)) = inside(win, ox, w) else {
        return;
    };
    for ki in 0..win.kh {
        let Some(iy) = win.source(oy, ki, h) else {
            continue;
        };
        let at = (ki * win.kw + cols.start) * c;
        let src = &patch[at..at + cols.len() * c];
        let first = (iy * w + ix) * c;
        let dst = &mut img[first..first + src.len()];
        for (d, s) in dst.iter_mut().zip(src) {
            *d += *s;
        }
    }
}

struct Im2Col(Window);

impl Kernel for Im2Col {
    const NAME: &'static str = "im2col";

    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        (n, h, w, c): (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)> {
        let x = inputs[0];
        let win = self.0;
        let Some((ho, wo)) = win.output(h, w) else {
            candle_core::bail!("im2col: window {win:?} does not fit a {h}x{w} input");
        };
        let k = win.kh * win.kw * c;
        if k == 0 {
            candle_core::bail!("im2col: the input has no channels");
        }
        // One output row (n, oy) per task: each writes its own slice, so no synchronisation.
        let fill = |row: usize, dst: &mut [MaybeUninit<T>]| {
            write_patches(x, win, (h, w, c), (ho, wo), row * wo, dst);
        };
        // SAFETY: every patch entry is either copied from the input or set to zero above.
        let out = unsafe { par_fill(n * ho * wo * k, wo * k, fill) };
        Ok((out, Shape::from((n, ho, wo, k))))
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        run_float(self, &[(s, l)])
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, h, w, _) = arg.dims4()?;
        Ok(Some(col2im(grad, self.0, h, w)?))
    }
}

struct Col2Im {
    win: Window,
    h: usize,
    w: usize,
}

impl Kernel for Col2Im {
    const NAME: &'static str = "col2im";

    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        (n, ho, wo, k): (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)> {
        let cols = inputs[0];
        let (win, h, w) = (self.win, self.h, self.w);
        if win.output(h, w) != Some((ho, wo)) || k % (win.kh * win.kw) != 0 {
            candle_core::bail!(
                "col2im: [{n}, {ho}, {wo}, {k}] is not the im2col of a {h}x{w} input with {win:?}"
            );
        }
        let c = k / (win.kh * win.kw);
        let mut out = vec![T::zero(); n * h * w * c];
        // One image per task: overlapping windows only ever add into the same image.
        out.par_chunks_mut(h * w * c)
            .enumerate()
            .for_each(|(b, img)| {
                let src = &cols[b * ho * wo * k..(b + 1) * ho * wo * k];
                for (p, patch) in src.chunks_exact(k).enumerate() {
                    add_patch(img, win, (h, w, c), (p / wo, p % wo), patch);
                }
            });
        Ok((out, Shape::from((n, h, w, c))))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        run_float(self, &[(s, l)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// col2im is the adjoint of im2col: <im2col(x), y> = <x, col2im(y)> for all x, y.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() -> Result<()> {
        let dev = Device::Cpu;
        for win in [
            Window {
                kh: 3,
                kw: 3,
                stride: 1,
                padding: 1,
            },
            Window {
                kh: 3,
                kw: 3,
                stride: 2,
                padding: 1,
            },
            Window {
                kh: 1,
                kw: 1,
                stride: 2,
                padding: 0,
            },
            Window {
                kh: 2,
                kw: 3,
                stride: 2,
                padding: 0,
            },
        ] {
            let x = Tensor::randn(0f64, 1., (2, 7, 6, 3), &dev)?;
            let cols = im2col(&x, win)?;
            let y = Tensor::randn(0f64, 1., cols.shape(), &dev)?;
            let lhs = (&cols * &y)?.sum_all()?.to_scalar::<f64>()?;
            let rhs = (&x * col2im(&y, win, 7, 6)?)?
                .sum_all()?
                .to_scalar::<f64>()?;
            assert!(
                (lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0),
                "{win:?}: {lhs} vs {rhs}"
            );
        }
        Ok(())
    }

    #[test]
    fn backward_routes_through_col2im() -> Result<()> {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (1, 4, 4, 2), &Device::Cpu)?)?;
        let win = Window {
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let grads = im2col(x.as_tensor(), win)?.sum_all()?.backward()?;
        // Each pixel is counted once per window covering it: 4 at a corner, 9 inside.
        let gx = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(gx[0], 4.0);
        assert_eq!(gx[(4 + 1) * 2], 9.0);
        Ok(())
    }
}
