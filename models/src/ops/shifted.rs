//! Stride-1 convolution with no patches at all: GEMMs over shifted views of a padded image.
//!
//! In an NHWC image padded to width `Wp`, the `kw` pixels under one kernel row of the window at
//! padded position `r` are `kw·C` consecutive values, and those of position `r + 1` start `C`
//! values later. So for kernel row `ky` the windows of every position form one matrix with row
//! stride `C` and `kw·C` columns, read in place from the padded image shifted by `ky·Wp` pixels;
//! the convolution is `kh` accumulated GEMMs against the weight's kernel rows. Positions whose
//! window runs off the right edge (`Wp − Wo` per row) are computed and dropped, which costs
//! `Wp/Wo` (1.06 at width 32, 1.25 at 8) instead of writing `kh·kw` copies of the input.
//!
//! The input gradient is the same correlation, of the output gradient padded by `k − 1 − p`
//! with the weight flipped; the weight gradient reads the same views against the output
//! gradient laid out at padded width (zeros at the dropped positions). Work is split into bands
//! of output rows of one image, whose padded input rows are copied into a small buffer first.

use candle_core::WithDType;
use rayon::prelude::*;

use super::cpu::{matmul_into, par_fill, write_copy};
use super::geometry::Window;

/// GEMM rows per band, about: enough to run gemm's kernels at speed, few enough that a
/// band's padded input and output stay in L2.
const BAND_POSITIONS: usize = 512;

/// Whether [`forward`], [`input_grad`] and [`weight_grad`] take this window: stride 1 and
/// padding less than the kernel (so the input gradient's padding `k − 1 − p` is not negative).
pub(crate) fn fits(win: Window) -> bool {
    win.stride == 1 && win.padding < win.kh && win.padding < win.kw
}

/// A stride-1 correlation of `[h, w, c_in]` images, padded by `ph` rows and `pw` columns on
/// each side, with a `kh × kw` kernel into `c_out` channels.
#[derive(Clone, Copy, Debug)]
struct Corr {
    h: usize,
    w: usize,
    c_in: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    c_out: usize,
}

impl Corr {
    /// Padded width.
    fn wp(&self) -> usize {
        self.w + 2 * self.pw
    }

    fn ho(&self) -> usize {
        self.h + 2 * self.ph + 1 - self.kh
    }

    fn wo(&self) -> usize {
        self.wp() + 1 - self.kw
    }

    /// Output rows per band: the largest divisor of `ho` whose positions fit
    /// [`BAND_POSITIONS`] (one row if none does), so that bands never straddle images.
    fn band(&self) -> usize {
        let fit = (BAND_POSITIONS / self.wp()).max(1);
        (1..=self.ho().min(fit))
            .rev()
            .find(|d| self.ho().is_multiple_of(*d))
            .unwrap_or(1)
    }

    /// GEMM rows of a band of `rows` output rows: every padded position of its rows but the
    /// last row's tail, whose windows would run past the band's input.
    fn positions(&self, rows: usize) -> usize {
        (rows - 1) * self.wp() + self.wo()
    }

    /// The padded input rows `first..first + rows` of output rows `first..` (padded
    /// coordinates) of one image, zeros where they cover padding.
    fn slab<T: WithDType>(&self, img: &[T], first: usize, rows: usize) -> Vec<T> {
        let (wp, c) = (self.wp(), self.c_in);
        let mut slab = vec![T::zero(); rows * wp * c];
        for (r, dst) in slab.chunks_exact_mut(wp * c).enumerate() {
            let py = first + r;
            if py >= self.ph && py - self.ph < self.h {
                let src = &img[(py - self.ph) * self.w * c..][..self.w * c];
                dst[self.pw * c..][..self.w * c].copy_from_slice(src);
            }
        }
        slab
    }

    /// Output rows `first..first + rows` of one image at padded width:
    /// `Σ_ky view_ky · wk[ky]`, with `wk` the weight as `[kh][kw·c_in][c_out]`.
    fn band_product<T: WithDType>(&self, img: &[T], wk: &[T], first: usize, rows: usize) -> Vec<T> {
        let (m, kc) = (self.positions(rows), self.kw * self.c_in);
        let slab = self.slab(img, first, rows + self.kh - 1);
        let mut out = vec![T::zero(); m * self.c_out];
        for ky in 0..self.kh {
            matmul_into(
                &mut out,
                (self.c_out, 1),
                (m, self.c_out, kc),
                true,
                &slab[ky * self.wp() * self.c_in..],
                (self.c_in, 1),
                &wk[ky * kc * self.c_out..],
                (self.c_out, 1),
            );
        }
        out
    }

    /// The correlation of every image of `x` (`n` of them), as `[n, ho, wo, c_out]` values.
    fn run<T: WithDType>(&self, x: &[T], wk: &[T], n: usize) -> Vec<T> {
        let (band, ho, wo) = (self.band(), self.ho(), self.wo());
        let bands = ho / band;
        let img_len = self.h * self.w * self.c_in;
        let fill = |t: usize, out: &mut [std::mem::MaybeUninit<T>]| {
            let (b, first) = (t / bands, (t % bands) * band);
            let img = &x[b * img_len..][..img_len];
            let wide = self.band_product(img, wk, first, band);
            // Keep the first `wo` positions of each padded-width row.
            for (r, dst) in out.chunks_exact_mut(wo * self.c_out).enumerate() {
                write_copy(dst, &wide[r * self.wp() * self.c_out..][..wo * self.c_out]);
            }
        };
        // SAFETY: each band writes all of its `band · wo · c_out` outputs.
        unsafe { par_fill(n * ho * wo * self.c_out, band * wo * self.c_out, fill) }
    }
}

/// `x ⊛ w` for NHWC `x: [n, h, w, c]` and `w: [c_out, kh·kw·c]` (im2col column order), as rows
/// `[n·ho·wo, c_out]`. `win` must [`fits`].
pub(crate) fn forward<T: WithDType>(
    x: &[T],
    w: &[T],
    win: Window,
    (n, h, wd, c): (usize, usize, usize, usize),
    c_out: usize,
) -> Vec<T> {
    let k = win.kh * win.kw * c;
    // [kh][kw·c][c_out] is wᵀ.
    let mut wk = vec![T::zero(); k * c_out];
    for (o, row) in w.chunks_exact(k).enumerate() {
        for (l, v) in row.iter().enumerate() {
            wk[l * c_out + o] = *v;
        }
    }
    let corr = Corr {
        h,
        w: wd,
        c_in: c,
        ph: win.padding,
        pw: win.padding,
        kh: win.kh,
        kw: win.kw,
        c_out,
    };
    corr.run(x, &wk, n)
}

/// `dX` for `dy: [n·ho·wo, c_out]`: `dy` padded by `k − 1 − p` correlated with the flipped
/// weight, as `[n, h, w, c]` values.
pub(crate) fn input_grad<T: WithDType>(
    dy: &[T],
    w: &[T],
    win: Window,
    (n, h, wd, c): (usize, usize, usize, usize),
    c_out: usize,
) -> Vec<T> {
    let (kh, kw) = (win.kh, win.kw);
    let k = kh * kw * c;
    // [kh][kw·c_out][c]: entry (ky, kx, o, ci) = w[o, kh−1−ky, kw−1−kx, ci].
    let mut wf = vec![T::zero(); k * c_out];
    for (o, row) in w.chunks_exact(k).enumerate() {
        for (tap, src) in row.chunks_exact(c).enumerate() {
            let (ky, kx) = (kh - 1 - tap / kw, kw - 1 - tap % kw);
            wf[((ky * kw + kx) * c_out + o) * c..][..c].copy_from_slice(src);
        }
    }
    let (ho, wo) = (h + 2 * win.padding + 1 - kh, wd + 2 * win.padding + 1 - kw);
    let corr = Corr {
        h: ho,
        w: wo,
        c_in: c_out,
        ph: kh - 1 - win.padding,
        pw: kw - 1 - win.padding,
        kh,
        kw,
        c_out: c,
    };
    corr.run(dy, &wf, n)
}

/// `dW = Σ dyᵀ · patches` as `[c_out, kh·kw·c]`, summed per group of consecutive bands, then
/// over the groups in order: the same sum, rounding included, on every run with the same
/// thread count.
pub(crate) fn weight_grad<T: WithDType>(
    x: &[T],
    dy: &[T],
    win: Window,
    (n, h, wd, c): (usize, usize, usize, usize),
    c_out: usize,
) -> Vec<T> {
    let corr = Corr {
        h,
        w: wd,
        c_in: c,
        ph: win.padding,
        pw: win.padding,
        kh: win.kh,
        kw: win.kw,
        c_out,
    };
    let (band, ho, wo, wp) = (corr.band(), corr.ho(), corr.wo(), corr.wp());
    let bands = ho / band;
    let (k, kc) = (win.kh * win.kw * c, win.kw * c);
    let img_len = h * wd * c;
    let tasks = n * bands;
    let per_group = tasks.div_ceil(4 * rayon::current_num_threads()).max(1);
    let partials: Vec<Vec<T>> = (0..tasks.div_ceil(per_group))
        .into_par_iter()
        .map(|group| {
            let mut acc = vec![T::zero(); c_out * k];
            let m = corr.positions(band);
            // dy at padded width: zeros at the positions the forward pass dropped.
            let mut dyw = vec![T::zero(); m * c_out];
            for t in group * per_group..((group + 1) * per_group).min(tasks) {
                let (b, first) = (t / bands, (t % bands) * band);
                let slab = corr.slab(&x[b * img_len..][..img_len], first, band + win.kh - 1);
                let rows = &dy[((b * ho + first) * wo) * c_out..][..band * wo * c_out];
                for (r, src) in rows.chunks_exact(wo * c_out).enumerate() {
                    dyw[r * wp * c_out..][..wo * c_out].copy_from_slice(src);
                }
                // acc[o, ky, ·] += view_kyᵀ · dyw, written through acc's transpose.
                for ky in 0..win.kh {
                    matmul_into(
                        &mut acc[ky * kc..],
                        (1, k),
                        (kc, c_out, m),
                        true,
                        &slab[ky * wp * c..],
                        (1, c),
                        &dyw,
                        (c_out, 1),
                    );
                }
            }
            acc
        })
        .collect();
    let mut total = vec![T::zero(); c_out * k];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(x, y)| *x += *y);
    }
    total
}
