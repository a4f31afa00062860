//! Convolution with no patches at all: GEMMs over shifted views of a padded image.
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
//! With stride `s` each kernel row gets its own buffer of every `s`-th padded input row, and
//! a window's kernel row starts `s·C` values after its neighbour's.

use candle_core::WithDType;
use rayon::prelude::*;

use super::cpu::{matmul_into, par_fill, write_copy};
use super::geometry::Window;

/// GEMM rows per band, about: enough to run gemm's kernels at speed, few enough that a
/// band's padded input and output stay in L2.
const BAND_POSITIONS: usize = 512;

/// Whether [`input_grad`] takes this window: stride 1 and padding less than the kernel (so
/// its padding `k − 1 − p` is not negative). [`forward`] and [`weight_grad`] take any window;
/// a strided layer's input gradient would correlate an output gradient dilated with zeros,
/// mostly multiplying zeros, so it stays with the patch tiles.
pub(crate) fn fits_input_grad(win: Window) -> bool {
    win.stride == 1 && win.padding < win.kh && win.padding < win.kw
}

/// A correlation with stride `s` of `[h, w, c_in]` images, padded by `ph` rows and `pw`
/// columns on each side, with a `kh × kw` kernel into `c_out` channels.
///
/// With stride `s` the windows of one output row start `s` pixels apart; the padded rows are
/// widened with zero columns to a multiple of `s` (`wp`), so that the positions of successive
/// output rows continue that stride: `wp / s` positions a row, of which the first `wo` are
/// kept.
#[derive(Clone, Copy, Debug)]
struct Corr {
    h: usize,
    w: usize,
    c_in: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    s: usize,
    c_out: usize,
}

impl Corr {
    fn new(win: Window, (h, w, c_in): (usize, usize, usize), c_out: usize) -> Self {
        Corr {
            h,
            w,
            c_in,
            ph: win.padding,
            pw: win.padding,
            kh: win.kh,
            kw: win.kw,
            s: win.stride,
            c_out,
        }
    }

    /// Padded width, rounded up to a multiple of the stride.
    fn wp(&self) -> usize {
        (self.w + 2 * self.pw).next_multiple_of(self.s)
    }

    /// Positions per output row.
    fn per_row(&self) -> usize {
        self.wp() / self.s
    }

    fn ho(&self) -> usize {
        (self.h + 2 * self.ph - self.kh) / self.s + 1
    }

    fn wo(&self) -> usize {
        (self.w + 2 * self.pw - self.kw) / self.s + 1
    }

    /// Output rows per band: the largest divisor of `ho` whose positions fit
    /// [`BAND_POSITIONS`] (one row if none does), so that bands never straddle images.
    fn band(&self) -> usize {
        let fit = (BAND_POSITIONS / self.per_row()).max(1);
        (1..=self.ho().min(fit))
            .rev()
            .find(|d| self.ho().is_multiple_of(*d))
            .unwrap_or(1)
    }

    /// GEMM rows of a band of `rows` output rows: every position of its rows but the last
    /// row's tail, whose windows would run past the band's input.
    fn positions(&self, rows: usize) -> usize {
        (rows - 1) * self.per_row() + self.wo()
    }

    /// Writes padded input rows `first, first + step, …` (padded coordinates) of one image
    /// into `slab`, each `wp` wide, as many as it holds: the image's pixels, zeros for rows
    /// outside it. The padding columns are never written: zero since the slab was made.
    fn slab<T: WithDType>(&self, img: &[T], first: usize, step: usize, slab: &mut [T]) {
        let (wp, c) = (self.wp(), self.c_in);
        for (r, dst) in slab.chunks_exact_mut(wp * c).enumerate() {
            let py = first + r * step;
            if py >= self.ph && py - self.ph < self.h {
                let src = &img[(py - self.ph) * self.w * c..][..self.w * c];
                dst[self.pw * c..][..self.w * c].copy_from_slice(src);
            } else {
                dst.fill(T::zero());
            }
        }
    }

    /// The windows of output rows `first..first + rows` of one image, by kernel row, in
    /// `buf` (reused from band to band): for each `ky` an offset into `buf` where row `i`
    /// (stride `s·c_in`, `kw·c_in` long) is position `i`'s kernel row `ky`. At stride 1 every
    /// kernel row reads one slab, shifted by `ky` rows; otherwise each has its own slab of
    /// every `s`-th input row.
    fn views<T: WithDType>(
        &self,
        img: &[T],
        first: usize,
        rows: usize,
        buf: &mut Vec<T>,
    ) -> Vec<usize> {
        let row_len = self.wp() * self.c_in;
        let (slabs, slab_rows) = match self.s {
            1 => (1, rows + self.kh - 1),
            _ => (self.kh, rows),
        };
        if buf.len() != slabs * slab_rows * row_len {
            *buf = vec![T::zero(); slabs * slab_rows * row_len];
        }
        if self.s == 1 {
            self.slab(img, first, 1, buf);
            return (0..self.kh).map(|ky| ky * row_len).collect();
        }
        for (ky, slab) in buf.chunks_exact_mut(rows * row_len).enumerate() {
            self.slab(img, self.s * first + ky, self.s, slab);
        }
        (0..self.kh).map(|ky| ky * rows * row_len).collect()
    }

    /// Output rows `first..first + rows` of one image, every position of each row
    /// (`per_row`), into `wide`: `Σ_ky view_ky · wk[ky]`, with `wk` the weight as
    /// `[kh][kw·c_in][c_out]`. The first product overwrites `wide`, so it needs no zeroing.
    fn band_product<T: WithDType>(
        &self,
        (img, wk): (&[T], &[T]),
        first: usize,
        rows: usize,
        (buf, wide): (&mut Vec<T>, &mut [T]),
    ) {
        let (m, kc) = (self.positions(rows), self.kw * self.c_in);
        let at = self.views(img, first, rows, buf);
        for (ky, &at) in at.iter().enumerate() {
            matmul_into(
                wide,
                (self.c_out, 1),
                (m, self.c_out, kc),
                ky > 0,
                &buf[at..],
                (self.s * self.c_in, 1),
                &wk[ky * kc * self.c_out..],
                (self.c_out, 1),
            );
        }
    }

    /// The correlation of every image of `x` (`n` of them), as `[n, ho, wo, c_out]` values.
    /// Each task computes a run of bands with one set of buffers.
    fn run<T: WithDType>(&self, x: &[T], wk: &[T], n: usize) -> Vec<T> {
        let (band, ho, wo) = (self.band(), self.ho(), self.wo());
        let bands = ho / band;
        let img_len = self.h * self.w * self.c_in;
        let band_len = band * wo * self.c_out;
        let per_task = tasks_per_group(n * bands);
        let fill = |g: usize, out: &mut [std::mem::MaybeUninit<T>]| {
            let mut buf = Vec::new();
            let mut wide = vec![T::zero(); self.per_row() * band * self.c_out];
            for (j, dst) in out.chunks_exact_mut(band_len).enumerate() {
                let t = g * per_task + j;
                let (b, first) = (t / bands, (t % bands) * band);
                let img = &x[b * img_len..][..img_len];
                self.band_product((img, wk), first, band, (&mut buf, &mut wide));
                // Keep the first `wo` positions of each row.
                for (r, dst) in dst.chunks_exact_mut(wo * self.c_out).enumerate() {
                    write_copy(
                        dst,
                        &wide[r * self.per_row() * self.c_out..][..wo * self.c_out],
                    );
                }
            }
        };
        // SAFETY: each task writes all `band · wo · c_out` outputs of each of its bands.
        unsafe { par_fill(n * ho * wo * self.c_out, per_task * band_len, fill) }
    }
}

/// Bands per task, for `tasks` bands: four tasks a thread, so that they balance, each
/// keeping its buffers over its run of bands.
fn tasks_per_group(tasks: usize) -> usize {
    tasks.div_ceil(4 * rayon::current_num_threads()).max(1)
}

/// `x ⊛ w` for NHWC `x: [n, h, w, c]` and `w: [c_out, kh·kw·c]` (im2col column order), as rows
/// `[n·ho·wo, c_out]`, for any window.
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
    Corr::new(win, (h, wd, c), c_out).run(x, &wk, n)
}

/// `dX` for `dy: [n·ho·wo, c_out]`: `dy` padded by `k − 1 − p` correlated with the flipped
/// weight, as `[n, h, w, c]` values. `win` must [`fits_input_grad`].
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
    let fwd = Corr::new(win, (h, wd, c), c_out);
    let corr = Corr {
        h: fwd.ho(),
        w: fwd.wo(),
        c_in: c_out,
        ph: kh - 1 - win.padding,
        pw: kw - 1 - win.padding,
        kh,
        kw,
        s: 1,
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
    let corr = Corr::new(win, (h, wd, c), c_out);
    let (band, ho, wo, per_row) = (corr.band(), corr.ho(), corr.wo(), corr.per_row());
    let bands = ho / band;
    let (k, kc) = (win.kh * win.kw * c, win.kw * c);
    let img_len = h * wd * c;
    let tasks = n * bands;
    let per_group = tasks_per_group(tasks);
    let partials: Vec<Vec<T>> = (0..tasks.div_ceil(per_group))
        .into_par_iter()
        .map(|group| {
            let mut acc = vec![T::zero(); c_out * k];
            let m = corr.positions(band);
            // dy at every position of a row: zeros at those the forward pass dropped.
            let mut dyw = vec![T::zero(); m * c_out];
            let mut buf = Vec::new();
            for t in group * per_group..((group + 1) * per_group).min(tasks) {
                let (b, first) = (t / bands, (t % bands) * band);
                let at = corr.views(&x[b * img_len..][..img_len], first, band, &mut buf);
                let rows = &dy[((b * ho + first) * wo) * c_out..][..band * wo * c_out];
                for (r, src) in rows.chunks_exact(wo * c_out).enumerate() {
                    dyw[r * per_row * c_out..][..wo * c_out].copy_from_slice(src);
                }
                // acc[o, ky, ·] += view_kyᵀ · dyw, written through acc's transpose.
                for (ky, &at) in at.iter().enumerate() {
                    matmul_into(
                        &mut acc[ky * kc..],
                        (1, k),
                        (kc, c_out, m),
                        true,
                        &buf[at..],
                        (1, win.stride * c),
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
