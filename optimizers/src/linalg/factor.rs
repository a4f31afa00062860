//! What the factorisations share, on the host and on a CUDA device: the methods, the
//! precisions, the scalar types and the ways a factorisation fails.

use candle_core::{DType, WithDType};
use faer::traits::RealField;

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

choice! {
    /// The precision a factorisation runs in (docs/algorithms.md, "Precision of the
    /// inverses").
    pub enum InverseDtype as "inverse dtype" {
        /// Single precision, as the reference K-FAC implementations invert; a numerical failure
        /// is retried in f64 before any extra damping.
        F32 = "f32",
        /// Double precision.
        F64 = "f64",
    }
}

impl InverseDtype {
    /// The candle dtype of this precision.
    pub fn dtype(self) -> DType {
        match self {
            InverseDtype::F32 => DType::F32,
            InverseDtype::F64 => DType::F64,
        }
    }

    /// `f(dtype)` in this precision. In f32 a numerical failure (not a failed tensor
    /// operation) is retried once in f64: single precision loses what double would keep, and
    /// the retry costs nothing where f32 succeeds.
    pub fn attempt<R>(self, f: impl Fn(DType) -> Result<R, FactorError>) -> Result<R, FactorError> {
        match (self, f(self.dtype())) {
            (InverseDtype::F32, Err(e)) if !matches!(e, FactorError::Candle(_)) => {
                tracing::debug!(error = %e, "the f32 factorisation failed; retrying in f64");
                f(DType::F64)
            }
            (_, result) => result,
        }
    }
}

/// A real scalar both faer and candle work in: f32 or f64.
pub trait Real: RealField + WithDType {}
impl Real for f32 {}
impl Real for f64 {}
