//! How a K-FAC-family factor is inverted: the method and the precision.

use crate::choice;

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
