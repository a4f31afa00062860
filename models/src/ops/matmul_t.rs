//! `a · wᵀ` for rows `a: [m, k]` and a weight `w: [n, k]` (a Linear layer's, or a convolution's
//! as a `[c_out, kh·kw·C]` matrix), whose backward pass writes `dW = dyᵀ · a` straight in the
//! weight's layout. Through candle's matmul of `w.t()`, autograd gave the weight's gradient as
//! a transposed view, which the gradient store then copied into place element by element: 7% of
//! a VGG-11 step at batch 32 on 2 threads.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use gemm::{gemm, Parallelism};

use rayon::prelude::*;

use super::cpu::{flat, float_dispatch, matmul_into};
use super::native;
use super::op_times::{dims_text, timed};

/// `a · wᵀ` for `a: [m, k]` and `w: [n, k]`, as `[m, n]`; differentiable in both (in `a` only
/// if `a` itself needs a gradient). Off the CPU kernels, candle's `a.matmul(&w.t())`.
///
/// # Errors
///
/// When either is not 2-d, their `k` differ or the dtype is not f32/f64.
pub fn matmul_t(a: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !native(a) {
        return a.matmul(&w.t()?);
    }
    a.contiguous()?.apply_op2(
        &w.contiguous()?,
        MatmulT {
            input_grad: a.track_op(),
        },
    )
}

struct MatmulT {
    /// Whether `a` needs a gradient (not when it is the network's input).
    input_grad: bool,
}

fn dims2(l: &Layout) -> Result<(usize, usize)> {
    match *l.shape().dims() {
        [r, c] => Ok((r, c)),
        ref d => candle_core::bail!("matmul-t: expected a 2-d operand, got shape {d:?}"),
    }
}

/// `a · wᵀ` by gemm on candle's thread count, `wᵀ` read through its strides.
///
/// gemm runs its kernels down the destination's columns, so it turns a row-major product
/// around first, and then packs all of `w` into panels. With few rows against a wide weight
/// (VGG-11's 512-channel layers on 2×2 images at batch 32: 128 rows against 512 × 4608) the
/// packing costs as much as the product. There the product is written column-major instead,
/// where gemm reads `wᵀ` in place, and the small result is transposed.
///
/// Unless the rows far outnumber the weight's, each thread multiplies its own block of the
/// weight's rows (the product's columns) on one thread: gemm's own split of such products
/// between threads packs and reads the whole weight on each (VGG-11's 4×4 layers: 512 rows
/// against 512 × 4608).
fn forward<T: WithDType>(a: &[T], w: &[T], (m, n, k): (usize, usize, usize)) -> Vec<T> {
    if k == 0 {
        return vec![T::zero(); m * n];
    }
    assert!(
        a.len() >= m * k && w.len() >= n * k,
        "matmul-t: operands too small"
    );
    let threads = candle_core::utils::get_num_threads();
    let column_major = m < n;
    let dst = if threads > 1 && m <= 16 * n && n >= 64 * threads {
        by_weight_rows(a, w, (m, n, k), threads, column_major)
    } else {
        whole(a, w, (m, n, k), threads, column_major)
    };
    if column_major {
        transpose(&dst, n, m)
    } else {
        dst
    }
}

/// `a · wᵀ` in one gemm call on `threads`, column-major or row-major.
fn whole<T: WithDType>(
    a: &[T],
    w: &[T],
    (m, n, k): (usize, usize, usize),
    threads: usize,
    column_major: bool,
) -> Vec<T> {
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // Destination strides (column, row).
    let (dcs, drs) = if column_major { (m, 1) } else { (1, n) };
    let mut dst: Vec<T> = Vec::with_capacity(m * n);
    // SAFETY: dst has room for the m×n values, which gemm writes without reading them
    // (read_dst false) through strides that cover exactly those; a is m×k row-major and
    // wᵀ[l][j] = w[j·k + l] reads n×k row-major w: the caller's assert and the shapes keep
    // every index in bounds.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dcs as isize,
            drs as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
        dst.set_len(m * n);
    }
    dst
}

/// `a · wᵀ` as `parts` blocks of the weight's rows, each block's product on one thread,
/// column-major or row-major.
fn by_weight_rows<T: WithDType>(
    a: &[T],
    w: &[T],
    (m, n, k): (usize, usize, usize),
    parts: usize,
    column_major: bool,
) -> Vec<T> {
    let cols = n.div_ceil(parts);
    // Block p: columns p·cols.. of the product, rows p·cols.. of w (wᵀ[l][j] = w[j·k + l]).
    let block = |p: usize, dst: &mut [T], width: usize, strides: (usize, usize)| {
        let rhs = &w[p * cols * k..];
        matmul_into(dst, strides, (m, width, k), false, a, (k, 1), rhs, (1, k));
    };
    if column_major {
        // Each block's columns are one run of the column-major product.
        let mut dst = vec![T::zero(); m * n];
        dst.par_chunks_mut(cols * m)
            .enumerate()
            .for_each(|(p, run)| block(p, run, run.len() / m, (1, m)));
        return dst;
    }
    let blocks: Vec<Vec<T>> = (0..n.div_ceil(cols))
        .into_par_iter()
        .map(|p| {
            let width = cols.min(n - p * cols);
            let mut b = vec![T::zero(); m * width];
            block(p, &mut b, width, (width, 1));
            b
        })
        .collect();
    // Interleave the blocks' rows into the row-major product.
    let mut dst = Vec::with_capacity(m * n);
    for i in 0..m {
        for b in &blocks {
            let width = b.len() / m;
            dst.extend_from_slice(&b[i * width..][..width]);
        }
    }
    dst
}

/// The product as `op_times` lists it: `m×k · (n×k)ᵀ`.
fn shape_text(m: usize, n: usize, k: usize) -> String {
    format!("{} · ({})ᵀ", dims_text(&[m, k]), dims_text(&[n, k]))
}

/// The transpose of the `rows × cols` row-major `src`, in square blocks that stay in cache.
fn transpose<T: WithDType>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const B: usize = 32;
    let mut out = vec![T::zero(); rows * cols];
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}

impl CustomOp2 for MatmulT {
    fn name(&self) -> &'static str {
        "matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((m, k), (n, kw)) = (dims2(l1)?, dims2(l2)?);
        if k != kw {
            candle_core::bail!("matmul-t: rows of length {k} against a weight [{n}, {kw}]");
        }
        let flops = 2.0 * (m * n * k) as f64;
        let out = timed("matmul_t", (|| shape_text(m, n, k), flops), || {
            Ok(float_dispatch!("matmul-t", s1, |T| forward::<T>(
                flat(s1, l1, "matmul-t")?,
                flat(s2, l2, "matmul-t")?,
                (m, n, k)
            )))
        })?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ((m, k), n) = (a.dims2()?, w.dim(0)?);
        let flops = 2.0 * (m * n * k) as f64 * if self.input_grad { 2.0 } else { 1.0 };
        timed("matmul_t backward", (|| shape_text(m, n, k), flops), || {
            // dW = dyᵀ · a: candle's matmul reads dyᵀ through its strides and writes [n, k].
            let dw = grad.t()?.matmul(a)?;
            let da = if self.input_grad {
                Some(grad.matmul(w)?)
            } else {
                None
            };
            Ok((da, Some(dw)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn rand(shape: (usize, usize), seed: u64) -> Result<Tensor> {
        let n = shape.0 * shape.1;
        let v: Vec<f64> = (0..n)
            .map(|i| ((i as u64 * 2654435761 + seed * 97) % 1000) as f64 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    #[test]
    fn values_and_gradients_are_candles_matmul_of_the_transpose() -> Result<()> {
        // A loss ⟨C, a·wᵀ⟩ with C random: candle's own matmul is the oracle for the value and
        // for both gradients, and the weight's gradient must come out contiguous.
        // More rows than columns, and fewer (written column-major, then transposed).
        for (m, n, k) in [(37, 11, 23), (5, 40, 23)] {
            check(m, n, k)?;
        }
        Ok(())
    }

    #[test]
    fn blocks_of_the_weights_rows_make_the_whole_product() -> Result<()> {
        // Each layout, blocks that divide the columns and blocks that do not, against candle's
        // matmul of the transpose.
        for (m, n, k, column_major, parts) in [
            (20, 300, 7, true, 2),
            (300, 200, 5, false, 3),
            (17, 130, 9, false, 2),
            (9, 131, 4, true, 4),
        ] {
            let (a, w) = (rand((m, k), 5)?, rand((n, k), 6)?);
            let want = a.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f64>()?;
            let (av, wv) = (
                a.flatten_all()?.to_vec1::<f64>()?,
                w.flatten_all()?.to_vec1::<f64>()?,
            );
            let got = by_weight_rows(&av, &wv, (m, n, k), parts, column_major);
            let got = if column_major {
                transpose(&got, n, m)
            } else {
                got
            };
            let err = got
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{m}x{n}x{k} in {parts} blocks: {err}");
        }
        Ok(())
    }

    fn check(m: usize, n: usize, k: usize) -> Result<()> {
        let (a, w, c) = (
            Var::from_tensor(&rand((m, k), 1)?)?,
            Var::from_tensor(&rand((n, k), 2)?)?,
            rand((m, n), 3)?,
        );
        let ours = matmul_t(a.as_tensor(), w.as_tensor())?;
        let theirs = a.as_tensor().matmul(&w.as_tensor().t()?)?;
        let diff = |x: &Tensor, y: &Tensor| -> Result<f64> {
            (x - y)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&ours, &theirs)? < 1e-12);
        let g1 = (&ours * &c)?.sum_all()?.backward()?;
        let g2 = (&theirs * &c)?.sum_all()?.backward()?;
        let (dw, da) = (
            g1.get(w.as_tensor()).unwrap(),
            g1.get(a.as_tensor()).unwrap(),
        );
        assert!(dw.is_contiguous());
        assert!(diff(dw, g2.get(w.as_tensor()).unwrap())? < 1e-12);
        assert!(diff(da, g2.get(a.as_tensor()).unwrap())? < 1e-12);
        // An input that needs no gradient gets none.
        let fixed = rand((m, k), 4)?;
        let g = matmul_t(&fixed, w.as_tensor())?.sum_all()?.backward()?;
        assert!(g.get(&fixed).is_none() && g.get(w.as_tensor()).is_some());
        assert_eq!(
            matmul_t(
                &fixed.to_dtype(DType::F32)?,
                &w.as_tensor().to_dtype(DType::F32)?
            )?
            .dims(),
            [m, n]
        );
        Ok(())
    }
}
