//! The dense linear algebra candle lacks, on `faer`: damped inverses of small symmetric
//! positive-definite matrices, in f32 or f64 ([`InverseDtype`]) whatever the training dtype.
//! Matrices cross between candle and faer once per refresh, as whole buffers. On a CUDA device
//! the factors are inverted there instead (`linalg/cusolver.rs`, feature `cuda`); both speak
//! the vocabulary of `linalg/factor.rs`.

use candle_core::{DType, Tensor, WithDType};
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::triangular::{matmul as triangular_matmul, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatMut, MatRef};

#[cfg(feature = "cuda")]
mod cusolver;
mod factor;

pub use factor::{attempt, dtype_of, CandleError, DenseMethod, FactorError, InverseDtype, Real};

fn check_finite<T: Real>(m: MatRef<'_, T>) -> Result<(), FactorError> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].to_f64().is_finite() {
                return Err(FactorError::NotFinite);
            }
        }
    }
    Ok(())
}

/// `m + λI`, which must be square.
pub fn damped<T: Real>(m: MatRef<'_, T>, damping: f64) -> Mat<T> {
    let mut d = m.to_owned();
    let lambda = T::from_f64(damping);
    for i in 0..d.nrows() {
        d[(i, i)] += lambda;
    }
    d
}

/// `(m + λI)⁻¹` for a symmetric positive semi-definite `m`, in `m`'s precision. Only `m`'s
/// lower triangle is read.
///
/// faer's building blocks rather than its `llt`/`self_adjoint_eigen` wrappers: they save
/// the wrappers' copies, and the symmetric products `L⁻ᵀL⁻¹` and `V·D·Vᵀ` are formed in one
/// triangle (half the flops of a full product), then mirrored.
pub fn damped_inverse<T: Real>(
    m: MatRef<'_, T>,
    damping: f64,
    method: DenseMethod,
) -> Result<Mat<T>, FactorError> {
    check_finite(m)?;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(FactorError::NotPositiveDefinite);
    }
    let n = m.nrows();
    let par = faer::get_global_parallelism();
    let one = T::from_f64(1.0);
    let mut inv = Mat::<T>::zeros(n, n);
    match method {
        DenseMethod::Cholesky => {
            // L·Lᵀ = m + λI in place, then (m + λI)⁻¹ = L⁻ᵀ·L⁻¹.
            let mut l = damped(m, damping);
            let params = Default::default();
            let mut mem = MemBuffer::new(cholesky_in_place_scratch::<T>(n, par, params));
            cholesky_in_place(
                l.as_mut(),
                Default::default(),
                par,
                MemStack::new(&mut mem),
                params,
            )
            .map_err(|_| FactorError::NotPositiveDefinite)?;
            let mut l_inv = Mat::<T>::zeros(n, n);
            invert_lower_triangular(l_inv.as_mut(), l.as_ref(), par);
            triangular_matmul(
                inv.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                l_inv.transpose(),
                BlockStructure::TriangularUpper,
                l_inv.as_ref(),
                BlockStructure::TriangularLower,
                one,
                par,
            );
        }
        DenseMethod::Eigen => {
            let mut w = Diag::<T>::zeros(n);
            let mut v = Mat::<T>::zeros(n, n);
            let params = Default::default();
            let scratch = self_adjoint_evd_scratch::<T>(n, ComputeEigenvectors::Yes, par, params);
            let mut mem = MemBuffer::new(scratch);
            self_adjoint_evd(
                m,
                w.as_mut(),
                Some(v.as_mut()),
                par,
                MemStack::new(&mut mem),
                params,
            )
            .map_err(|_| FactorError::NoConvergence)?;
            // V·diag(1/(max(w, 0) + λ)): negative round-off eigenvalues clamp to zero.
            let mut scaled = v.clone();
            let w = w.column_vector();
            for j in 0..n {
                let d = WithDType::to_f64(w[j]).max(0.0) + damping;
                if d <= 0.0 {
                    return Err(FactorError::NotPositiveDefinite);
                }
                let d = T::from_f64(d);
                scaled.col_as_slice_mut(j).iter_mut().for_each(|x| *x /= d);
            }
            triangular_matmul(
                inv.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                scaled.as_ref(),
                BlockStructure::Rectangular,
                v.transpose(),
                BlockStructure::Rectangular,
                one,
                par,
            );
        }
    }
    mirror_lower(inv.as_mut());
    check_finite(inv.as_ref()).map_err(|_| FactorError::NotPositiveDefinite)?;
    Ok(inv)
}

/// Copies the strict lower triangle onto the upper one.
fn mirror_lower<T: Real>(mut m: MatMut<'_, T>) {
    for j in 0..m.ncols() {
        for i in 0..j {
            m[(i, j)] = m[(j, i)];
        }
    }
}

/// `(stat + λI)⁻¹` for a symmetric `stat` tensor, factorised in `dtype` (f32 or f64) and
/// returned in `stat`'s dtype and device: with cuSOLVER on a CUDA device (feature `cuda`),
/// with faer on the host otherwise. No retry: [`attempt`] adds that.
pub fn damped_inverse_in(
    stat: &Tensor,
    damping: f64,
    method: DenseMethod,
    dtype: DType,
) -> Result<Tensor, FactorError> {
    let unsupported = |other: DType| {
        FactorError::Candle(CandleError(format!(
            "factorisations run in f32 or f64, not {other:?}"
        )))
    };
    #[cfg(feature = "cuda")]
    if stat.device().is_cuda() {
        return match dtype {
            DType::F32 => cusolver::damped_inverse::<f32>(stat, damping, method),
            DType::F64 => cusolver::damped_inverse::<f64>(stat, damping, method),
            other => Err(unsupported(other)),
        };
    }
    match dtype {
        DType::F32 => host_damped_inverse::<f32>(stat, damping, method),
        DType::F64 => host_damped_inverse::<f64>(stat, damping, method),
        other => Err(unsupported(other)),
    }
}

/// [`damped_inverse_in`] in `precision`, an f32 failure retried in f64.
pub fn damped_inverse_tensor(
    stat: &Tensor,
    damping: f64,
    method: DenseMethod,
    precision: InverseDtype,
) -> Result<Tensor, FactorError> {
    attempt(precision, |dtype| {
        damped_inverse_in(stat, damping, method, dtype)
    })
}

/// [`damped_inverse_in`] with faer, in `T`.
fn host_damped_inverse<T: Real>(
    stat: &Tensor,
    damping: f64,
    method: DenseMethod,
) -> Result<Tensor, FactorError> {
    let (n, cols) = stat.dims2()?;
    if n != cols {
        let msg = format!("a factor must be square, not {n}×{cols}");
        return Err(candle_core::Error::Msg(msg).into());
    }
    let v = stat.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()?;
    // Symmetric (to rounding): the row-major buffer read column-major is the same matrix, of
    // which only the lower triangle is read, and the inverse, mirrored, is exactly symmetric.
    let inv = damped_inverse(MatRef::from_column_major_slice(&v, n, n), damping, method)?;
    let mut out = Vec::with_capacity(n * n);
    for j in 0..n {
        out.extend_from_slice(inv.col_as_slice(j));
    }
    Ok(Tensor::from_vec(out, (n, n), stat.device())?.to_dtype(stat.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn spd(n: usize) -> Mat<f64> {
        let b = Mat::from_fn(n, n + 2, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.4);
        &b * b.transpose()
    }

    #[test]
    fn both_methods_invert_the_damped_matrix() {
        let m = spd(6);
        for method in [DenseMethod::Eigen, DenseMethod::Cholesky] {
            let inv = damped_inverse(m.as_ref(), 1e-2, method).unwrap();
            let prod = &damped(m.as_ref(), 1e-2) * &inv;
            for i in 0..6 {
                for j in 0..6 {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((prod[(i, j)] - want).abs() < 1e-9, "{method:?} {i} {j}");
                }
            }
        }
    }

    #[test]
    fn nan_and_indefinite_inputs_fail_cleanly() {
        let mut m = spd(4);
        m[(1, 2)] = f64::NAN;
        assert_eq!(
            damped_inverse(m.as_ref(), 1e-3, DenseMethod::Eigen),
            Err(FactorError::NotFinite)
        );
        let mut neg = Mat::<f64>::identity(3, 3);
        neg[(0, 0)] = -1.0;
        assert_eq!(
            damped_inverse(neg.as_ref(), 1e-3, DenseMethod::Cholesky),
            Err(FactorError::NotPositiveDefinite)
        );
    }

    #[test]
    fn a_factorisation_that_fails_in_f32_is_retried_in_f64() {
        // [[1, 1], [1, 1 + ε]] is positive definite, but singular once rounded to f32.
        let eps = 1e-9;
        let t = Tensor::new(&[[1f64, 1.0], [1.0, 1.0 + eps]], &Device::Cpu).unwrap();
        let chol = DenseMethod::Cholesky;
        assert_eq!(
            damped_inverse_in(&t, 0.0, chol, DType::F32).err(),
            Some(FactorError::NotPositiveDefinite)
        );
        // Its inverse is [[1 + ε, −1], [−1, 1]] / ε.
        let want = [[(1.0 + eps) / eps, -1.0 / eps], [-1.0 / eps, 1.0 / eps]];
        for precision in [InverseDtype::F32, InverseDtype::F64] {
            let got = damped_inverse_tensor(&t, 0.0, chol, precision).unwrap();
            let got = got.to_vec2::<f64>().unwrap();
            for i in 0..2 {
                for j in 0..2 {
                    let e = (got[i][j] - want[i][j]).abs() / want[i][j].abs();
                    assert!(e < 1e-5, "{precision:?} ({i}, {j}): {e:e}");
                }
            }
        }
    }

    #[test]
    fn only_an_f32_numerical_failure_is_retried_and_only_in_f64() {
        let tried = |precision: InverseDtype, error: FactorError| {
            let calls = std::cell::RefCell::new(Vec::new());
            let _ = attempt(precision, |dtype| -> Result<(), FactorError> {
                calls.borrow_mut().push(dtype);
                Err(error.clone())
            });
            calls.into_inner()
        };
        let candle = FactorError::Candle(CandleError("device lost".into()));
        assert_eq!(
            tried(InverseDtype::F32, FactorError::NoConvergence),
            [DType::F32, DType::F64]
        );
        assert_eq!(tried(InverseDtype::F32, candle.clone()), [DType::F32]);
        assert_eq!(
            tried(InverseDtype::F64, FactorError::NotPositiveDefinite),
            [DType::F64]
        );
    }
}
