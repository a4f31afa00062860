//! Convolution that multiplies no padding: output positions grouped by the kernel taps that
//! fall inside the input.
//!
//! im2col (and the shifted views) multiply the zeros a window covers at the border. On small
//! images that is much of the work: with a 3×3 window and padding 1, 16% of the products at 8×8,
//! 31% at 4×4 and 56% at 2×2 (a direct convolution, such as PyTorch's on the CPU, skips them).
//! Along each axis the output coordinates fall into a few classes by the range of kernel
//! offsets that land inside the input (first, interior and last with padding 1); a pair of
//! classes is a set of positions sharing one rectangle of taps. Each class's patches are
//! gathered with those taps only, multiplied by the matching columns of the weight (read in
//! place), and the results put back in pixel order.

use std::ops::Range;

use candle_core::WithDType;
use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu::{matmul_into, matmul_par, par_fill, write_copy};
use super::geometry::{ConvGeom, Window};

/// The share of im2col's entries that are padding, for `win` over an `h × w` input: the
/// products [`forward`] saves.
pub fn padding_share(win: Window, h: usize, w: usize) -> f64 {
    let Some((ho, wo)) = win.output(h, w) else {
        return 0.0;
    };
    let inside = |len: usize, out: usize, k: usize| -> usize {
        axis_classes(len, out, k, win)
            .iter()
            .map(|c| c.taps.len() * c.outs.len())
            .sum()
    };
    let all = (ho * wo * win.kh * win.kw) as f64;
    1.0 - (inside(h, ho, win.kh) * inside(w, wo, win.kw)) as f64 / all
}

/// Output coordinates along one axis whose windows have the same kernel offsets inside the
/// input.
struct AxisClass {
    taps: Range<usize>,
    outs: Vec<usize>,
}

/// The classes of the `out` output coordinates of an axis of `len` input coordinates with a
/// kernel `k` long.
fn axis_classes(len: usize, out: usize, k: usize, win: Window) -> Vec<AxisClass> {
    let mut classes: Vec<AxisClass> = Vec::new();
    for o in 0..out {
        let start = o * win.stride;
        let lo = win.padding.saturating_sub(start).min(k);
        let hi = (len + win.padding).saturating_sub(start).clamp(lo, k);
        match classes.iter_mut().find(|c| c.taps == (lo..hi)) {
            Some(c) => c.outs.push(o),
            None => classes.push(AxisClass {
                taps: lo..hi,
                outs: vec![o],
            }),
        }
    }
    classes
}

/// Output positions sharing one rectangle of taps; their rows come `row0..row0 + n·per_img`
/// in the class-ordered matrices, image by image, then `oy`, then `ox`.
struct Class {
    ky: Range<usize>,
    kx: Range<usize>,
    oys: Vec<usize>,
    oxs: Vec<usize>,
    row0: usize,
    /// `n·per_img`.
    rows: usize,
}

impl Class {
    fn per_img(&self) -> usize {
        self.oys.len() * self.oxs.len()
    }

    /// Patch length: the class's taps times the channels.
    fn k(&self, c: usize) -> usize {
        self.ky.len() * self.kx.len() * c
    }

    /// The runs of columns, `(patch column, weight column, length)`, over which the class's
    /// patch and the weight's row are both contiguous: one per kernel row, or one in all when
    /// the class has every kernel column.
    fn runs(&self, s: ConvGeom) -> Vec<(usize, usize, usize)> {
        let run = self.kx.len() * s.c;
        if self.kx.len() == s.win.kw {
            return vec![(0, self.ky.start * run, self.ky.len() * run)];
        }
        self.ky
            .clone()
            .enumerate()
            .map(|(j, ky)| (j * run, (ky * s.win.kw + self.kx.start) * s.c, run))
            .collect()
    }
}

/// The classes of a convolution and the class-ordered row of every output pixel.
struct Plan {
    s: ConvGeom,
    classes: Vec<Class>,
    /// `row[pixel]`: the pixel's row in class order.
    row: Vec<usize>,
}

impl Plan {
    fn new(s: ConvGeom) -> Self {
        let ys = axis_classes(s.h, s.ho, s.win.kh, s.win);
        let xs = axis_classes(s.w, s.wo, s.win.kw, s.win);
        let mut classes = Vec::new();
        let mut row = vec![0; s.n * s.ho * s.wo];
        let mut row0 = 0;
        for y in &ys {
            for x in &xs {
                let class = Class {
                    ky: y.taps.clone(),
                    kx: x.taps.clone(),
                    oys: y.outs.clone(),
                    oxs: x.outs.clone(),
                    row0,
                    rows: s.n * y.outs.len() * x.outs.len(),
                };
                let mut r = row0;
                for b in 0..s.n {
                    for &oy in &class.oys {
                        for &ox in &class.oxs {
                            row[(b * s.ho + oy) * s.wo + ox] = r;
                            r += 1;
                        }
                    }
                }
                row0 = r;
                classes.push(class);
            }
        }
        Plan { s, classes, row }
    }

    /// The class whose rows include class-ordered row `r`.
    fn class_of(&self, r: usize) -> &Class {
        let after = self.classes.partition_point(|c| c.row0 <= r);
        &self.classes[after - 1]
    }

    /// The pixels, in row order.
    fn rows(&self) -> usize {
        self.row.len()
    }

    /// For each of the class's windows in one image, in row order, where in the NHWC image its
    /// taps start: the input pixels under its first tap row and its kernel columns,
    /// `kx.len()·c` consecutive values. Tap row `j` starts `j` image rows (`w·c` values) on.
    fn windows(&self, cl: &Class) -> Vec<usize> {
        let (s, win) = (self.s, self.s.win);
        let mut at = Vec::with_capacity(cl.per_img());
        for &oy in &cl.oys {
            for &ox in &cl.oxs {
                let (iy, ix) = (oy * win.stride + cl.ky.start, ox * win.stride + cl.kx.start);
                at.push(((iy - win.padding) * s.w + ix - win.padding) * s.c);
            }
        }
        at
    }

    /// The windows of one class as `[n·per_img, k]` patches: of each tap row `ky`, the input
    /// pixels under the class's taps, which are consecutive in an NHWC row.
    fn patches<T: WithDType>(&self, x: &[T], cl: &Class) -> Vec<T> {
        let s = self.s;
        let (k, run) = (cl.k(s.c), cl.kx.len() * s.c);
        if k == 0 {
            // Windows wholly over padding: no taps, outputs zero.
            return Vec::new();
        }
        let (img_len, img_row) = (s.h * s.w * s.c, s.w * s.c);
        let windows = self.windows(cl);
        let fill = |b: usize, dst: &mut [std::mem::MaybeUninit<T>]| {
            let img = &x[b * img_len..][..img_len];
            for (patch, &at) in dst.chunks_exact_mut(k).zip(&windows) {
                for (j, taps) in patch.chunks_exact_mut(run).enumerate() {
                    write_copy(taps, &img[at + j * img_row..][..run]);
                }
            }
        };
        // SAFETY: every row of the image's block is one patch, and every tap of it is copied.
        unsafe { par_fill(cl.rows * k, cl.per_img() * k, fill) }
    }

    /// The same patches transposed, `[k, n·per_img]`: as the left operand of a column-major
    /// product gemm packs them by copying columns, where row-major patches would be
    /// transposed into its panels on every thread.
    fn patches_t<T: WithDType>(&self, x: &[T], cl: &Class) -> Vec<T> {
        let s = self.s;
        let (k, run, m) = (cl.k(s.c), cl.kx.len() * s.c, cl.rows);
        if k == 0 {
            return Vec::new();
        }
        let img_len = s.h * s.w * s.c;
        // Where each row's first kernel row starts in `x`; kernel row j is j input rows on.
        let windows = self.windows(cl);
        let starts: Vec<usize> = (0..s.n)
            .flat_map(|b| windows.iter().map(move |at| b * img_len + at))
            .collect();
        // One kernel row's `run` rows of the result per task, written eight columns at a time.
        let fill = |j: usize, dst: &mut [std::mem::MaybeUninit<T>]| {
            let shift = j * s.w * s.c;
            for (c8, group) in starts.chunks(8).enumerate() {
                for l in 0..run {
                    let out = &mut dst[l * m + c8 * 8..][..group.len()];
                    for (d, &st) in out.iter_mut().zip(group) {
                        d.write(x[st + shift + l]);
                    }
                }
            }
        };
        // SAFETY: each task writes all `m` columns of each of its `run` rows.
        unsafe { par_fill(k * m, run * m, fill) }
    }

    /// The rows of `[pixels, c_out]` values `v` in class order.
    fn to_class_order<T: WithDType>(&self, v: &[T]) -> Vec<T> {
        let c = self.s.c_out;
        let mut pixel = vec![0; self.rows()];
        for (p, &r) in self.row.iter().enumerate() {
            pixel[r] = p;
        }
        let fill = |t: usize, dst: &mut [std::mem::MaybeUninit<T>]| {
            for (i, row) in dst.chunks_exact_mut(c).enumerate() {
                write_copy(row, &v[pixel[t * self.s.wo + i] * c..][..c]);
            }
        };
        // SAFETY: every row of each task's chunk is copied whole.
        unsafe { par_fill(v.len(), self.s.wo * c, fill) }
    }
}

/// Output channels per thread: each thread multiplies its own block of the weight's rows.
fn channel_block(c_out: usize) -> usize {
    c_out.div_ceil(rayon::current_num_threads()).max(1)
}

/// `x ⊛ w` as `[n·ho·wo, c_out]` rows.
///
/// Each class's products land in its own region of `z`, `rows_c × c_out`. gemm packs the left
/// operand of a product into panels and reads the right one in place, and packing a row-major
/// operand is a transposition. So a class with more rows than channels is written row-major,
/// gemm's threads packing the weight (the smaller operand) and reading the patches in place;
/// one with fewer is written column-major from transposed patches, which gemm packs by
/// copying, each thread against its own block of channels with the weight read in place.
pub(crate) fn forward<T: WithDType>(x: &[T], w: &[T], s: ConvGeom) -> Vec<T> {
    let plan = Plan::new(s);
    let patches: Vec<Vec<T>> = (plan.classes.iter())
        .map(|cl| match row_major(cl, s) {
            true => plan.patches(x, cl),
            false => plan.patches_t(x, cl),
        })
        .collect();
    let k = s.win.kh * s.win.kw * s.c;
    let threads = rayon::current_num_threads();
    let block = channel_block(s.c_out);
    let mut z = vec![T::zero(); plan.rows() * s.c_out];
    // Column-major regions' channel blocks, by thread.
    let mut by_block: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    let mut rest = z.as_mut_slice();
    for (cl, a) in plan.classes.iter().zip(&patches) {
        let m = cl.rows;
        let (region, tail) = rest.split_at_mut(m * s.c_out);
        rest = tail;
        if row_major(cl, s) {
            for (at, w_at, len) in cl.runs(s) {
                matmul_par(
                    region,
                    (s.c_out, 1),
                    (m, s.c_out, len),
                    true,
                    &a[at..],
                    (cl.k(s.c), 1),
                    &w[w_at..],
                    (1, k),
                    Parallelism::Rayon(threads),
                );
            }
        } else {
            for (b, part) in region.chunks_mut(block * m).enumerate() {
                by_block[b].push((cl, a.as_slice(), part));
            }
        }
    }
    by_block.into_par_iter().enumerate().for_each(|(b, parts)| {
        for (cl, a, part) in parts {
            let (m, o0) = (cl.rows, b * block);
            for (at, w_at, len) in cl.runs(s) {
                matmul_into(
                    part,
                    (1, m),
                    (m, part.len() / m, len),
                    true,
                    &a[at * m..],
                    (1, m),
                    &w[o0 * k + w_at..],
                    (1, k),
                );
            }
        }
    });
    // Back to pixel order, one output row of pixels at a time.
    let fill = |t: usize, dst: &mut [std::mem::MaybeUninit<T>]| {
        for (q, out) in dst.chunks_exact_mut(s.c_out).enumerate() {
            let r = plan.row[t * s.wo + q];
            let cl = plan.class_of(r);
            let (m, i) = (cl.rows, r - cl.row0);
            let region = &z[cl.row0 * s.c_out..][..m * s.c_out];
            if row_major(cl, s) {
                write_copy(out, &region[i * s.c_out..][..s.c_out]);
            } else {
                for (o, v) in out.iter_mut().enumerate() {
                    v.write(region[i + o * m]);
                }
            }
        }
    };
    // SAFETY: each task writes every channel of each of its pixels.
    unsafe { par_fill(plan.rows() * s.c_out, s.wo * s.c_out, fill) }
}

/// Whether [`forward`] writes this class's region row-major: it has more rows than channels.
fn row_major(cl: &Class, s: ConvGeom) -> bool {
    cl.rows > s.c_out
}

/// `dW = Σ dyᵀ · patches` as `[c_out, kh·kw·c]`, for `dy: [n·ho·wo, c_out]`.
pub(crate) fn weight_grad<T: WithDType>(x: &[T], dy: &[T], s: ConvGeom) -> Vec<T> {
    let plan = Plan::new(s);
    let patches: Vec<Vec<T>> = plan.classes.iter().map(|cl| plan.patches(x, cl)).collect();
    let dyc = plan.to_class_order(dy);
    let k = s.win.kh * s.win.kw * s.c;
    let block = channel_block(s.c_out);
    let mut dw = vec![T::zero(); s.c_out * k];
    dw.par_chunks_mut(block * k)
        .enumerate()
        .for_each(|(i, dwb)| {
            let (o0, nb) = (i * block, dwb.len() / k);
            for (cl, a) in plan.classes.iter().zip(&patches) {
                for (at, w_at, len) in cl.runs(s) {
                    // dW[o, taps] += Σ_rows dy[row, o] · patch[row, taps].
                    matmul_into(
                        &mut dwb[w_at..],
                        (k, 1),
                        (nb, len, cl.rows),
                        true,
                        &dyc[cl.row0 * s.c_out + o0..],
                        (1, s.c_out),
                        &a[at..],
                        (cl.k(s.c), 1),
                    );
                }
            }
        });
    dw
}

/// `dX` as `[n, h, w, c]` values: per image, each class's patch gradients `dy · w` (over its
/// taps only) added onto the pixels they came from.
pub(crate) fn input_grad<T: WithDType>(dy: &[T], w: &[T], s: ConvGeom) -> Vec<T> {
    let plan = Plan::new(s);
    let dyc = plan.to_class_order(dy);
    let k = s.win.kh * s.win.kw * s.c;
    let img_len = s.h * s.w * s.c;
    // Blocks of images, one per thread: the products of a class over a block have rows enough
    // for gemm's kernels (a 2×2 image has one position per class).
    let imgs = s.n.div_ceil(rayon::current_num_threads()).max(1);
    let mut dx = vec![T::zero(); s.n * img_len];
    dx.par_chunks_mut(imgs * img_len)
        .enumerate()
        .for_each(|(t, block)| {
            let (b0, nb) = (t * imgs, block.len() / img_len);
            for cl in &plan.classes {
                let (kc, run, m) = (cl.k(s.c), cl.kx.len() * s.c, cl.per_img());
                if kc == 0 {
                    continue;
                }
                let mut da = vec![T::zero(); nb * m * kc];
                for (at, w_at, len) in cl.runs(s) {
                    matmul_into(
                        &mut da[at..],
                        (kc, 1),
                        (nb * m, len, s.c_out),
                        false,
                        &dyc[(cl.row0 + b0 * m) * s.c_out..],
                        (s.c_out, 1),
                        &w[w_at..],
                        (k, 1),
                    );
                }
                let windows = plan.windows(cl);
                let mut patches = da.chunks_exact(kc);
                for img in block.chunks_exact_mut(img_len) {
                    // Windows first: zip stops on them without taking a patch of the next image.
                    for (&at, patch) in windows.iter().zip(patches.by_ref()) {
                        for (j, taps) in patch.chunks_exact(run).enumerate() {
                            img[at + j * s.w * s.c..][..run]
                                .iter_mut()
                                .zip(taps)
                                .for_each(|(d, g)| *d += *g);
                        }
                    }
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_share_counts_the_zeros_of_im2col() {
        let win = Window {
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        // Per axis of n: 3n − 2 of 3n taps inside; the share is 1 − ((3n − 2)/3n)².
        for (n, share) in [
            (2, 1.0 - (4.0f64 / 6.0).powi(2)),
            (8, 1.0 - (22.0f64 / 24.0).powi(2)),
        ] {
            assert!((padding_share(win, n, n) - share).abs() < 1e-12);
        }
        let valid = Window { padding: 0, ..win };
        assert_eq!(padding_share(valid, 5, 5), 0.0);
    }
}
