//! What the factorisations share, on the host and on a CUDA device: the methods, the
//! precisions, the scalar types and the ways a factorisation fails.

use candle_core::{DType, WithDType};
use faer::traits::RealField;

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

pub use kinds::{DenseMethod, InverseDtype};

/// The candle dtype of `precision`.
pub fn dtype_of(precision: InverseDtype) -> DType {
    match precision {
        InverseDtype::F32 => DType::F32,
        InverseDtype::F64 => DType::F64,
    }
}

/// `f(dtype)` in `precision`. In f32 a numerical failure (not a failed tensor operation) is
/// retried once in f64: single precision loses what double would keep, and the retry costs
/// nothing where f32 succeeds.
pub fn attempt<R>(
    precision: InverseDtype,
    f: impl Fn(DType) -> Result<R, FactorError>,
) -> Result<R, FactorError> {
    match (precision, f(dtype_of(precision))) {
        (InverseDtype::F32, Err(e)) if !matches!(e, FactorError::Candle(_)) => {
            tracing::debug!(error = %e, "the f32 factorisation failed; retrying in f64");
            f(DType::F64)
        }
        (_, result) => result,
    }
}

/// A real scalar both faer and candle work in: f32 or f64.
pub trait Real: RealField + WithDType {}
impl Real for f32 {}
impl Real for f64 {}
