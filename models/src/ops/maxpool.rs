//! Max pooling over NHWC input. The backward routes each output gradient to the first input
//! position holding the window's maximum (PyTorch's tie rule), recomputed from the input.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::composed;
use super::cpu::{par_fill, run_float, write_copy, Kernel};
use super::geometry::Window;
use super::native;

/// Max pooling `[N, H, W, C]` → `[N, Ho, Wo, C]` over the windows `win`; padding never wins
/// the maximum. Differentiable: the gradient goes to the first maximum of each window.
///
/// # Errors
///
/// When `x` is not 4-d, `win` does not fit it or the dtype is not f32/f64.
pub fn max_pool2d(x: &Tensor, win: Window) -> Result<Tensor> {
    if !native(x) {
        return composed::max_pool2d(x, win);
    }
    x.contiguous()?.apply_op1(MaxPool(win))
}

/// The flat index of channel 0 of each input pixel in output pixel (b, oy, ox)'s window, row
/// by row, padding skipped. Channels are innermost (NHWC), so each pixel's `c` values are
/// contiguous and the kernels below compare whole channel runs at once, which vectorises.
fn window_pixels(
    win: Window,
    (h, w, c): (usize, usize, usize),
    b: usize,
    oy: usize,
    ox: usize,
) -> impl Iterator<Item = usize> {
    (0..win.kh)
        .filter_map(move |ki| win.source(oy, ki, h))
        .flat_map(move |iy| {
            (0..win.kw)
                .filter_map(move |kj| win.source(ox, kj, w))
                .map(move |ix| ((b * h + iy) * w + ix) * c)
        })
}

/// `best = max(best, xs)` channel by channel, a later value winning only when strictly larger
/// (the first maximum), and `at = j` where it wins. In blocks of lanes copied into locals:
/// updated in place, the selects became conditional stores, which do not vectorise.
#[inline]
fn keep_max<T: WithDType>(best: &mut [T], mut at: Option<&mut [u32]>, xs: &[T], j: u32) {
    const LANES: usize = 16;
    for (i, (bb, xb)) in best.chunks_mut(LANES).zip(xs.chunks(LANES)).enumerate() {
        let mut b = [T::zero(); LANES];
        let mut later = [false; LANES];
        b[..bb.len()].copy_from_slice(bb);
        for ((b, l), &v) in b.iter_mut().zip(&mut later).zip(xb) {
            *l = v > *b;
            *b = if *l { v } else { *b };
        }
        bb.copy_from_slice(&b[..bb.len()]);
        if let Some(at) = at.as_deref_mut() {
            let ab = &mut at[i * LANES..][..bb.len()];
            let mut a = [0u32; LANES];
            a[..ab.len()].copy_from_slice(ab);
            for (a, &l) in a.iter_mut().zip(&later) {
                *a = if l { j } else { *a };
            }
            ab.copy_from_slice(&a[..ab.len()]);
        }
    }
}

struct MaxPool(Window);

impl Kernel for MaxPool {
    const NAME: &'static str = "max_pool2d";

    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        (n, h, w, c): (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)> {
        let x = inputs[0];
        let win = self.0;
        let Some((ho, wo)) = win
            .output(h, w)
            .filter(|_| win.padding < win.kh.min(win.kw))
        else {
            candle_core::bail!("max_pool2d: window {win:?} does not fit a {h}x{w} input");
        };
        let fill = |row: usize, dst: &mut [MaybeUninit<T>]| {
            let (b, oy) = (row / ho, row % ho);
            for (ox, out) in dst.chunks_mut(c).enumerate() {
                // Padding is smaller than the window, so every window holds an input pixel.
                let mut pixels = window_pixels(win, (h, w, c), b, oy, ox);
                let first = pixels.next().expect("window inside input");
                write_copy(out, &x[first..first + c]);
                // SAFETY: write_copy initialised all of `out`.
                let out = unsafe { &mut *(out as *mut [MaybeUninit<T>] as *mut [T]) };
                // A later pixel wins only when strictly larger: the first maximum, as the
                // backward pass routes it.
                for p in pixels {
                    keep_max(out, None, &x[p..p + c], 0);
                }
            }
        };
        // SAFETY: the loop above writes every element of each output row.
        let out = unsafe { par_fill(n * ho * wo * c, wo * c, fill) };
        Ok((out, Shape::from((n, ho, wo, c))))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        run_float(self, &[(s, l)])
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolBackward(self.0),
        )?))
    }
}

/// (input, output gradient) → input gradient.
struct MaxPoolBackward(Window);

impl Kernel for MaxPoolBackward {
    const NAME: &'static str = "max_pool2d backward";

    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        (n, h, w, c): (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)> {
        let (x, g) = (inputs[0], inputs[1]);
        let win = self.0;
        let (ho, wo) = win.output(h, w).expect("checked in the forward pass");
        if g.len() != n * ho * wo * c {
            candle_core::bail!(
                "max_pool2d backward: gradient has {} elements, expected {}",
                g.len(),
                n * ho * wo * c
            );
        }
        let mut dx = vec![T::zero(); n * h * w * c];
        dx.par_chunks_mut(h * w * c)
            .enumerate()
            .for_each(|(b, img)| {
                // Per channel, the window's first maximum so far: its value and which of the
                // window's pixels holds it. Selects instead of branches, so the channel loops
                // vectorise.
                let (mut best, mut at) = (vec![T::zero(); c], vec![0u32; c]);
                let mut pixels = Vec::with_capacity(win.kh * win.kw);
                for oy in 0..ho {
                    for ox in 0..wo {
                        pixels.clear();
                        pixels.extend(window_pixels(win, (h, w, c), b, oy, ox));
                        let first = pixels[0];
                        best.copy_from_slice(&x[first..first + c]);
                        at.fill(0);
                        for (j, &p) in (1u32..).zip(&pixels[1..]) {
                            keep_max(&mut best, Some(&mut at), &x[p..p + c], j);
                        }
                        let go = ((b * ho + oy) * wo + ox) * c;
                        let g = &g[go..go + c];
                        for (j, &p) in (0u32..).zip(&pixels) {
                            let d = &mut img[p - b * h * w * c..][..c];
                            for ((d, &a), &gv) in d.iter_mut().zip(&at).zip(g) {
                                *d += if a == j { gv } else { T::zero() };
                            }
                        }
                    }
                }
            });
        Ok((dx, Shape::from((n, h, w, c))))
    }
}

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "max-pool-nhwc-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        run_float(self, &[(s1, l1), (s2, l2)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Forward against candle's own NCHW max_pool2d; gradient against central finite
    /// differences. (Candle 0.11's max_pool2d backward is not an oracle: it scales the
    /// gradient by the fraction of maxima in the window, 1/4 for a 2x2 window.)
    #[test]
    fn forward_matches_candle_and_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        // 37 channels: two whole blocks of the kernels' lanes and a partial one.
        for c in [3, 37] {
            let x0 = Tensor::randn(0f64, 1., (2, 6, 8, c), &dev)?;
            let x = Var::from_tensor(&x0)?;
            let w = Tensor::randn(0f64, 1., (2, 3, 4, c), &dev)?;
            let win = Window::POOL_2X2;
            let ours = max_pool2d(x.as_tensor(), win)?;
            let theirs = x0
                .permute((0, 3, 1, 2))?
                .max_pool2d(2)?
                .permute((0, 2, 3, 1))?;
            assert!((&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
            let g = (ours * &w)?.sum_all()?.backward()?;
            let g = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()?
                .to_vec1::<f64>()?;
            let v0 = x0.flatten_all()?.to_vec1::<f64>()?;
            let f = |v: &[f64]| -> Result<f64> {
                let t = Tensor::from_slice(v, (2, 6, 8, c), &dev)?;
                (max_pool2d(&t, win)? * &w)?.sum_all()?.to_scalar::<f64>()
            };
            for i in (0..v0.len()).step_by(7) {
                let (mut up, mut down) = (v0.clone(), v0.clone());
                up[i] += 1e-6;
                down[i] -= 1e-6;
                let fd = (f(&up)? - f(&down)?) / 2e-6;
                assert!((fd - g[i]).abs() < 1e-6, "element {i}: fd {fd} vs {}", g[i]);
            }
        }
        Ok(())
    }

    #[test]
    fn a_tied_window_routes_its_gradient_to_its_first_maximum() -> Result<()> {
        // PyTorch's rule: row by row, the first of equal maxima takes the whole gradient. Two
        // channels, the second with its maximum tied at the window's last two pixels.
        let x = Tensor::from_vec(
            vec![1f64, 0., 1., 0., 1., 2., 1., 2.],
            (1, 2, 2, 2),
            &Device::Cpu,
        )?;
        let x = Var::from_tensor(&x)?;
        let win = Window::POOL_2X2;
        let y = max_pool2d(x.as_tensor(), win)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [1., 2.]);
        let g = y.sum_all()?.backward()?;
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f64>()?;
        assert_eq!(g, [1., 0., 0., 0., 0., 1., 0., 0.]);
        Ok(())
    }

    #[test]
    fn padded_windows_ignore_padding() -> Result<()> {
        // All-negative input: padding (never a candidate) must not produce a 0 maximum.
        let x = (Tensor::ones((1, 4, 4, 1), candle_core::DType::F32, &Device::Cpu)? * -1.0)?;
        let y = max_pool2d(
            &x,
            Window {
                kh: 3,
                kw: 3,
                stride: 2,
                padding: 1,
            },
        )?;
        assert_eq!(y.dims(), &[1, 2, 2, 1]);
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![-1.0; 4]);
        Ok(())
    }
}
