//! The dense linear algebra candle lacks, on `faer`: damped inverses of small symmetric
//! positive-definite matrices. Matrices cross between candle and faer once per refresh, as
//! whole buffers, and the factorisations run in f64 whatever the training dtype. On a CUDA
//! device the factors are inverted there instead (`cusolver.rs`, feature `cuda`).

use candle_core::{DType, Device, Tensor};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use crate::choice::choice;

/// Why a factorisation gave no inverse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FactorError {
    /// The statistic (or the computed inverse) holds NaN or infinite entries.
    #[error("the matrix holds NaN or infinite entries")]
    NotFinite,
    /// The damped matrix is not positive definite, or the damping is negative or not finite.
    #[error("the matrix is not positive definite after damping")]
    NotPositiveDefinite,
    /// The eigendecomposition did not converge.
    #[error("the eigendecomposition did not converge")]
    NoConvergence,
    /// A tensor operation around the factorisation failed.
    #[error(transparent)]
    Candle(#[from] CandleError),
}

/// candle's error is not `Clone`; keep its message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CandleError(pub String);

impl From<candle_core::Error> for FactorError {
    fn from(e: candle_core::Error) -> Self {
        FactorError::Candle(CandleError(e.to_string()))
    }
}

choice! {
    /// How a dense symmetric factor is inverted.
    pub enum DenseMethod as "dense method" {
        /// Symmetric eigendecomposition (K-FAC as the paper runs it, §3.4); negative round-off
        /// eigenvalues are clamped to zero before damping.
        Eigen = "eigen",
        /// Cholesky factorisation.
        Cholesky = "cholesky",
    }
}

/// A `[r, c]` tensor as a faer matrix in f64.
pub fn to_mat(t: &Tensor) -> candle_core::Result<Mat<f64>> {
    let (r, c) = t.dims2()?;
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(Mat::from_fn(r, c, |i, j| v[i * c + j]))
}

/// A faer matrix as a `[r, c]` tensor of `dtype`.
pub fn to_tensor(m: &Mat<f64>, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(m[(i, j)]);
        }
    }
    Tensor::from_vec(v, (r, c), device)?.to_dtype(dtype)
}

fn check_finite(m: &Mat<f64>) -> Result<(), FactorError> {
    for j in 0..m.ncols() {
        if m.col_as_slice(j).iter().any(|x| !x.is_finite()) {
            return Err(FactorError::NotFinite);
        }
    }
    Ok(())
}

/// `m + λI`, which must be square.
pub fn damped(m: &Mat<f64>, damping: f64) -> Mat<f64> {
    let mut d = m.clone();
    for i in 0..d.nrows() {
        d[(i, i)] += damping;
    }
    d
}

/// `(m + λI)⁻¹` for a symmetric positive semi-definite `m`.
pub fn damped_inverse(
    m: &Mat<f64>,
    damping: f64,
    method: DenseMethod,
) -> Result<Mat<f64>, FactorError> {
    check_finite(m)?;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(FactorError::NotPositiveDefinite);
    }
    let inv = match method {
        DenseMethod::Cholesky => damped(m, damping)
            .llt(Side::Lower)
            .map_err(|_| FactorError::NotPositiveDefinite)?
            .inverse(),
        DenseMethod::Eigen => {
            let evd = m
                .self_adjoint_eigen(Side::Lower)
                .map_err(|_| FactorError::NoConvergence)?;
            let (u, s) = (evd.U(), evd.S().column_vector());
            let mut scaled = u.to_owned();
            for j in 0..scaled.ncols() {
                let d = s[j].max(0.0) + damping;
                if d <= 0.0 {
                    return Err(FactorError::NotPositiveDefinite);
                }
                scaled.col_as_slice_mut(j).iter_mut().for_each(|x| *x /= d);
            }
            &scaled * u.transpose()
        }
    };
    check_finite(&inv).map_err(|_| FactorError::NotPositiveDefinite)?;
    Ok(inv)
}

/// `(stat + λI)⁻¹` for a symmetric `stat` tensor, returned in its dtype and device: with
/// cuSOLVER on a CUDA device (feature `cuda`), with faer on the host otherwise.
pub fn damped_inverse_tensor(
    stat: &Tensor,
    damping: f64,
    method: DenseMethod,
) -> Result<Tensor, FactorError> {
    #[cfg(feature = "cuda")]
    if stat.device().is_cuda() {
        return crate::cusolver::damped_inverse(stat, damping, method);
    }
    let inv = damped_inverse(&to_mat(stat)?, damping, method)?;
    Ok(to_tensor(&inv, stat.dtype(), stat.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Mat<f64> {
        let b = Mat::from_fn(n, n + 2, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.4);
        &b * b.transpose()
    }

    #[test]
    fn both_methods_invert_the_damped_matrix() {
        let m = spd(6);
        for method in [DenseMethod::Eigen, DenseMethod::Cholesky] {
            let inv = damped_inverse(&m, 1e-2, method).unwrap();
            let prod = &damped(&m, 1e-2) * &inv;
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
            damped_inverse(&m, 1e-3, DenseMethod::Eigen),
            Err(FactorError::NotFinite)
        );
        let mut neg = Mat::<f64>::identity(3, 3);
        neg[(0, 0)] = -1.0;
        assert_eq!(
            damped_inverse(&neg, 1e-3, DenseMethod::Cholesky),
            Err(FactorError::NotPositiveDefinite)
        );
    }

    #[test]
    fn tensors_round_trip_without_transposing() {
        let t = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], (2, 3), &Device::Cpu).unwrap();
        let m = to_mat(&t).unwrap();
        assert_eq!(m[(0, 2)], 3.0);
        let back = to_tensor(&m, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
    }
}
