//! What every CPU kernel here needs: NHWC dimensions, contiguous slices, and dispatch over the
//! float types (f32 for training, f64 for oracle tests).

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, Shape, WithDType};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::op_times::{dims_text, timed};

/// A kernel over contiguous inputs of one float type; the first input's shape is `dims`.
pub(crate) trait Kernel {
    const NAME: &'static str;
    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        dims: (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)>;
}

fn dims4(l: &Layout, op: &str) -> Result<(usize, usize, usize, usize)> {
    match *l.shape().dims() {
        [a, b, c, d] => Ok((a, b, c, d)),
        ref d => candle_core::bail!("{op}: expected a 4-d NHWC tensor, got shape {d:?}"),
    }
}

/// The contiguous elements of one input, of any rank.
pub(crate) fn flat<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        // `as_slice` also rejects an input of another type than the first.
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// Runs `k` on `inputs` in their float type, timed under its name (`op_times`).
pub(crate) fn run_float<K: Kernel>(
    k: &K,
    inputs: &[(&CpuStorage, &Layout)],
) -> Result<(CpuStorage, Shape)> {
    fn slices<'a, T: WithDType>(
        inputs: &[(&'a CpuStorage, &Layout)],
        op: &str,
    ) -> Result<Vec<&'a [T]>> {
        inputs.iter().map(|(s, l)| flat::<T>(s, l, op)).collect()
    }
    let dims = dims4(inputs[0].1, K::NAME)?;
    let (a, b, c, d) = dims;
    timed(
        K::NAME,
        (|| dims_text(&[a, b, c, d]), 0.0),
        || match inputs[0].0 {
            CpuStorage::F32(_) => {
                let (v, sh) = k.run(&slices::<f32>(inputs, K::NAME)?, dims)?;
                Ok((CpuStorage::F32(v), sh))
            }
            CpuStorage::F64(_) => {
                let (v, sh) = k.run(&slices::<f64>(inputs, K::NAME)?, dims)?;
                Ok((CpuStorage::F64(v), sh))
            }
            _ => candle_core::bail!("{}: only f32 and f64 are supported", K::NAME),
        },
    )
}

/// A `len`-long vector built in parallel: `fill(i, chunk)` writes the `i`-th run of `chunk`
/// elements (the last may be shorter). Nothing is zeroed first: for an op's output that would
/// be one more pass over memory than the op itself needs.
///
/// # Safety
/// `fill` must write every element of the chunk it is given.
pub(crate) unsafe fn par_fill<T: Send>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| fill(i, c));
    // SAFETY: the caller's `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Single-threaded [`matmul_par`]: the tasks around it are the parallelism.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_into<T: WithDType>(
    dst: &mut [T],
    strides: (usize, usize),
    mnk: (usize, usize, usize),
    accumulate: bool,
    lhs: &[T],
    lstrides: (usize, usize),
    rhs: &[T],
    rstrides: (usize, usize),
) {
    matmul_par(
        dst,
        strides,
        mnk,
        accumulate,
        lhs,
        lstrides,
        rhs,
        rstrides,
        Parallelism::None,
    )
}

/// `dst (m×n) = [dst +] lhs · rhs`, every operand through its strides
/// (`dst[i][j] = dst[i·drs + j·dcs]`, `lhs[i][l] = lhs[i·lrs + l·lcs]`,
/// `rhs[l][j] = rhs[l·rrs + j·rcs]`), on gemm's own threads as `par` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_par<T: WithDType>(
    dst: &mut [T],
    (drs, dcs): (usize, usize),
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    lhs: &[T],
    (lrs, lcs): (usize, usize),
    rhs: &[T],
    (rrs, rcs): (usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() > (m - 1) * drs + (n - 1) * dcs,
        "gemm destination too small"
    );
    assert!(k == 0 || lhs.len() > (m - 1) * lrs + (k - 1) * lcs);
    assert!(k == 0 || rhs.len() > (k - 1) * rrs + (n - 1) * rcs);
    // SAFETY: the asserts keep every index gemm touches inside the three slices.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dcs as isize,
            drs as isize,
            accumulate,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            rcs as isize,
            rrs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

/// Writes `src` into the uninitialised `dst` (same length).
#[inline]
pub(crate) fn write_copy<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
}

/// `CpuStorage` of `$body`'s result, with `$t` the type alias for the first input's float type
/// (f32 or f64); other types are refused, naming `$op`.
macro_rules! float_dispatch {
    ($op:expr, $first:expr, |$t:ident| $body:expr) => {
        match $first {
            CpuStorage::F32(_) => {
                type $t = f32;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: only f32 and f64 are supported", $op),
        }
    };
}
pub(crate) use float_dispatch;
