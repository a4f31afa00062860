//! Curvature blocks of the K-FAC family.
//!
//! Every preconditioned layer approximates its Fisher block as `Ω ⊗ Γ`, so its block is two
//! [`Factor`]s: one over the layer's input rows (Ω), one over its output-gradient rows (Γ).
//! A factor folds rows into a running statistic, refreshes a damped inverse from it, and applies
//! that inverse to a gradient. The variants differ in which rows they are fed ([`rows`]) and in
//! how they store and invert the statistic:
//!
//! | factor | statistic | inverse | used by |
//! |---|---|---|---|
//! | [`DenseFactor`] | EMA of `YᵀY/N` (n×n) | eigendecomposition or Cholesky | `kfac`, `kfac-sua`'s Γ |
//! | [`SuaFactor`] | EMA of the `c_in×c_in` channel covariance | `I ⊗ (Ω_c+λI)⁻¹` | `kfac-sua`'s conv Ω |
//! | [`LowRankFactor`] | EMA of `Y` itself (N×n) | Woodbury, N×N Cholesky | `skfac-rs`, `skfac-ss` |
//!
//! Every factorisation runs in the block's [`InverseDtype`] (f32 by default, as the reference
//! K-FAC implementations), a numerical failure in f32 retried in f64 before more damping.

mod block;
mod dense;
mod low_rank;
pub mod rows;
pub mod shared;
mod sua;

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use crate::comm::Communicator;
use crate::damping::FactorInit;
pub use crate::linalg::{DenseMethod, FactorError, InverseDtype};
pub use block::{Approx, Block, BlockOptions};
pub use dense::DenseFactor;
pub use low_rank::{LowRankFactor, RowAverage, WoodburyMode};
pub use sua::SuaFactor;

/// One Kronecker factor `F` of a layer's curvature block.
pub trait Factor: Send {
    /// Folds one batch of rows `[N, n]` into the running statistic with moving-average decay
    /// `decay` (`new = decay·old + (1-decay)·batch`); the first batch is taken as it is. In a
    /// data-parallel job each process holds a shard of the global batch, and the statistic
    /// (or, for low-rank factors, the rows) is exchanged through `comm` so that every process
    /// folds in the global batch's; alone, `comm` is [`crate::Local`].
    fn observe(&mut self, rows: &Tensor, decay: f64, comm: &dyn Communicator) -> Result<()>;

    /// Recomputes `(F + λI)⁻¹` from the running statistic.
    fn refresh(&mut self, damping: f64) -> std::result::Result<(), FactorError>;

    /// Whether [`Factor::refresh`] has produced an inverse that is still in use.
    fn has_inverse(&self) -> bool;

    /// Forgets the inverse (a failed refresh falls back to the plain gradient).
    fn clear_inverse(&mut self);

    /// `v (F + λI)⁻¹` for `v: [k, n]`.
    fn apply_right(&self, v: &Tensor) -> Result<Tensor>;

    /// `(F + λI)⁻¹ v` for `v: [n, k]`; `F` is symmetric.
    fn apply_left(&self, v: &Tensor) -> Result<Tensor> {
        self.apply_right(&v.t()?.contiguous()?)?.t()?.contiguous()
    }

    /// `tr F / dim F` of the undamped statistic, for the π damping split.
    fn mean_diagonal(&self) -> Result<f64>;

    /// The undamped statistic as a dense n×n matrix (tests and diagnostics).
    fn matrix(&self) -> Result<Tensor>;

    /// The damped inverse as a dense n×n matrix (tests, and forming it for comparison).
    fn inverse_matrix(&self) -> Result<Tensor>;

    /// The shapes of the tensors [`Factor::inverse_parts`] gives, from the statistic alone
    /// (which every process of a data-parallel job holds): what another process receives.
    /// Only factors whose inverses are shared ([`shared`]) have them.
    fn inverse_shapes(&self) -> Result<Vec<(usize, usize)>> {
        Err(not_shared())
    }

    /// The inverse as the tensors another process needs to use it.
    fn inverse_parts(&self) -> Result<Vec<Tensor>> {
        Err(not_shared())
    }

    /// Takes the inverse another process computed at `damping` from its
    /// [`Factor::inverse_parts`].
    fn set_inverse(&mut self, _parts: Vec<Tensor>, _damping: f64) -> Result<()> {
        Err(not_shared())
    }

    /// Appends the factor's tensors under `prefix`.
    fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()>;

    /// Restores what [`Factor::save`] wrote; absent entries leave that part empty.
    fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()>;
}

/// `decay·old + (1-decay)·new`. Without an `old` yet: `new` itself (`FactorInit::First`), or
/// the first step from the identity, `decay·I + (1-decay)·new` (`FactorInit::Identity`).
pub(crate) fn moving_average(
    old: Option<&Tensor>,
    new: Tensor,
    decay: f64,
    init: FactorInit,
) -> Result<Tensor> {
    match (old, init) {
        (Some(o), _) if decay > 0.0 => (o * decay)? + (new * (1.0 - decay))?,
        (Some(_), _) | (None, FactorInit::First) => Ok(new),
        (None, FactorInit::Identity) => {
            let eye = Tensor::eye(new.dim(0)?, new.dtype(), new.device())?;
            (eye * decay)? + (new * (1.0 - decay))?
        }
    }
}

/// The mean of a square matrix's diagonal, on the matrix's device (one scalar comes back):
/// the `n²` entries and `n` zeros, as rows of `n + 1`, start with the diagonal.
pub(crate) fn mean_diagonal(m: &Tensor) -> Result<f64> {
    let n = m.dim(0)?;
    if n == 0 {
        return Ok(0.0);
    }
    let diag = m
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .pad_with_zeros(0, 0, n)?
        .reshape((n, n + 1))?
        .narrow(1, 0, 1)?;
    Ok(diag.sum_all()?.to_scalar::<f64>()? / n as f64)
}

fn not_shared() -> candle_core::Error {
    candle_core::Error::Msg("this factor's inverse is not shared between processes".into())
}

/// A square statistic's shape.
pub(crate) fn square(stat: Option<&Tensor>) -> Result<(usize, usize)> {
    let n = stat.ok_or_else(|| missing("statistic"))?.dim(0)?;
    Ok((n, n))
}

/// The error of a factor asked for what it has not computed yet.
pub(crate) fn missing(what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("curvature factor has no {what} yet"))
}
