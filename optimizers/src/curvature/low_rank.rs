//! SKFAC's factor (paper Theorem 1, Algorithm 1): a moving average of the rows `Y` themselves,
//! inverted through the Woodbury identity
//! `(λI + YᵀY/N)⁻¹ = λ⁻¹ [I − Yᵀ (NλI + YYᵀ)⁻¹ Y]`, which factorises only an N×N matrix.
//! When `N ≥ n` the n×n inverse is the cheaper one and is used instead (Algorithm 1, line 3).

use std::collections::{BTreeMap, VecDeque};

use candle_core::{DType, Result, Tensor};

use super::{missing, moving_average, Factor};
use crate::comm::{all_gather_rows, Channel, Communicator};
use crate::damping::FactorInit;
use crate::linalg::{self, DenseMethod, FactorError, InverseDtype};
use crate::state::{put, take};
use kinds::choice;

choice! {
    /// How the Woodbury inverse is used.
    pub enum WoodburyMode as "woodbury mode" {
        /// Apply `λ⁻¹[v − (vYᵀ)K⁻¹Y]` without forming the n×n matrix: O(N·k·n) per application.
        Applied = "applied",
        /// Form the n×n inverse at refresh time (the paper's cost) and multiply by it.
        Formed = "formed",
    }
}

choice! {
    /// Which rows make SKFAC's factor `YᵀY/N` (docs/algorithms.md, "The moving average of
    /// rows").
    pub enum RowAverage as "row average" {
        /// The moving average of the rows themselves (the paper's eqs. 26-27): for rows
        /// independent between batches it estimates (1−β)/(1+β) of a batch's covariance.
        Ema = "ema",
        /// The current batch's rows only (the paper's official code).
        Batch = "batch",
        /// The last k batches' rows stacked, batch j back weighted by √((1−β)βʲ), normalised:
        /// `YᵀY/N` is K-FAC's moving average truncated to k batches, a Woodbury system of k·M
        /// rows.
        Stack = "stack",
    }
}

/// A factor kept as its rows `Y` (`[N, n]`) and inverted through the Woodbury identity, or
/// densely when `N ≥ n`. Batches with a different row count than the ones before are
/// skipped.
pub struct LowRankFactor {
    mode: WoodburyMode,
    precision: InverseDtype,
    average: RowAverage,
    /// How many batches [`RowAverage::Stack`] keeps.
    depth: usize,
    /// The last batches' rows, newest first ([`RowAverage::Stack`] only).
    recent: VecDeque<Tensor>,
    /// The factor's rows `Y`, `[N, n]`.
    ema: Option<Tensor>,
    inv: Option<Inverse>,
}

enum Inverse {
    /// `(λI + YᵀY/N)⁻¹` as an n×n matrix (`N ≥ n`, or [`WoodburyMode::Formed`]).
    Dense(Tensor),
    /// The `Y` of the refresh and `K⁻¹ = (NλI + YYᵀ)⁻¹`.
    Woodbury {
        y: Tensor,
        k_inv: Tensor,
        damping: f64,
    },
}

impl LowRankFactor {
    /// An empty factor that uses its Woodbury inverse as `mode` says, factorises in
    /// `precision`, and averages its rows as `average` says (over `depth` batches for
    /// [`RowAverage::Stack`]).
    pub fn new(
        mode: WoodburyMode,
        precision: InverseDtype,
        average: RowAverage,
        depth: usize,
    ) -> Self {
        LowRankFactor {
            mode,
            precision,
            average,
            depth: depth.max(1),
            recent: VecDeque::new(),
            ema: None,
            inv: None,
        }
    }

    /// The held batches stacked, batch j back scaled by `√(m·ω_j)` with
    /// `ω_j = (1−β)βʲ / Σ_i (1−β)βⁱ`, so that `YᵀY/(m·M) = Σ_j ω_j Y_jᵀY_j / M`.
    fn stacked(&self, decay: f64) -> Result<Tensor> {
        let m = self.recent.len();
        let w: Vec<f64> = (0..m)
            .map(|j| (1.0 - decay) * decay.powi(j as i32))
            .collect();
        let total: f64 = w.iter().sum();
        let parts: Vec<Tensor> = self
            .recent
            .iter()
            .zip(&w)
            .map(|(y, wj)| y * (m as f64 * wj / total).sqrt())
            .collect::<Result<_>>()?;
        Tensor::cat(&parts, 0)
    }

    /// The inverse from rows `y_t`, its Gram matrix formed and factorised in `dtype` on the
    /// rows' device: on a GPU only the N×N (or n×n) factorisation's status comes back to the
    /// host, as for K-FAC's dense factors.
    fn inverse_in(
        &self,
        y_t: &Tensor,
        damping: f64,
        dtype: DType,
    ) -> std::result::Result<Inverse, FactorError> {
        let stored = y_t.dtype();
        let y = y_t.to_dtype(dtype)?;
        let (n_rows, n) = y.dims2()?;
        let cholesky = |m: &Tensor, lambda: f64| {
            linalg::damped_inverse_in(m, lambda, DenseMethod::Cholesky, dtype)
        };
        if n_rows >= n {
            let m = (y.t()?.matmul(&y)? / n_rows as f64)?;
            return Ok(Inverse::Dense(cholesky(&m, damping)?.to_dtype(stored)?));
        }
        if !(damping.is_finite() && damping > 0.0) {
            return Err(FactorError::NotPositiveDefinite);
        }
        let k_inv = cholesky(&y.matmul(&y.t()?)?, n_rows as f64 * damping)?;
        Ok(match self.mode {
            WoodburyMode::Applied => Inverse::Woodbury {
                y: y_t.copy()?,
                k_inv: k_inv.to_dtype(stored)?,
                damping,
            },
            WoodburyMode::Formed => {
                // λ⁻¹ [I − Yᵀ K⁻¹ Y]
                let low = y.t()?.matmul(&k_inv.matmul(&y)?)?;
                let eye = Tensor::eye(n, dtype, y.device())?;
                Inverse::Dense(((eye - low)? / damping)?.to_dtype(stored)?)
            }
        })
    }
}

impl Factor for LowRankFactor {
    fn observe(&mut self, rows: &Tensor, decay: f64, comm: &dyn Communicator) -> Result<()> {
        // SKFAC sends its rows, not an n×n statistic: every process gets the global batch's
        // `Y` (before the shape check, which must then agree on every process).
        let gathered = all_gather_rows(comm, rows, Channel::Statistics)?;
        let rows = &gathered;
        let before = match self.average {
            RowAverage::Stack => self.recent.front(),
            RowAverage::Ema | RowAverage::Batch => self.ema.as_ref(),
        };
        if let Some(old) = before {
            if old.dims() != rows.dims() {
                // A different row count (a last, smaller batch): skip rather than mix shapes.
                tracing::debug!(old = ?old.dims(), new = ?rows.dims(), "skipped a statistics refresh");
                return Ok(());
            }
        }
        self.ema = Some(match self.average {
            RowAverage::Ema => {
                moving_average(self.ema.as_ref(), rows.clone(), decay, FactorInit::First)?
            }
            RowAverage::Batch => rows.clone(),
            RowAverage::Stack => {
                self.recent.push_front(rows.clone());
                self.recent.truncate(self.depth);
                self.stacked(decay)?
            }
        });
        Ok(())
    }

    fn refresh(&mut self, damping: f64) -> std::result::Result<(), FactorError> {
        let y = self.ema.as_ref().ok_or_else(|| missing("statistic"))?;
        // In f32, a failure is retried with the Gram matrix formed again in f64.
        let inv = linalg::attempt(self.precision, |dtype| self.inverse_in(y, damping, dtype))?;
        self.inv = Some(inv);
        Ok(())
    }

    fn has_inverse(&self) -> bool {
        self.inv.is_some()
    }

    fn clear_inverse(&mut self) {
        self.inv = None;
    }

    fn apply_right(&self, v: &Tensor) -> Result<Tensor> {
        match self.inv.as_ref().ok_or_else(|| missing("inverse"))? {
            Inverse::Dense(m) => v.matmul(m),
            Inverse::Woodbury { y, k_inv, damping } => {
                // λ⁻¹ [v − (v Yᵀ) K⁻¹ Y]
                let low = v.matmul(&y.t()?)?.matmul(k_inv)?.matmul(y)?;
                (v - low)? / *damping
            }
        }
    }

    fn apply_left(&self, v: &Tensor) -> Result<Tensor> {
        match self.inv.as_ref().ok_or_else(|| missing("inverse"))? {
            Inverse::Dense(m) => m.matmul(v),
            Inverse::Woodbury { y, k_inv, damping } => {
                // λ⁻¹ [v − Yᵀ K⁻¹ (Y v)]
                let low = y.t()?.matmul(&k_inv.matmul(&y.matmul(v)?)?)?;
                (v - low)? / *damping
            }
        }
    }

    fn mean_diagonal(&self) -> Result<f64> {
        // tr(YᵀY/N)/n = ‖Y‖²/(N·n), without forming the n×n matrix.
        let y = self.ema.as_ref().ok_or_else(|| missing("statistic"))?;
        let (rows, n) = y.dims2()?;
        let sq = y
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        Ok(sq / (rows * n).max(1) as f64)
    }

    fn matrix(&self) -> Result<Tensor> {
        let y = self.ema.as_ref().ok_or_else(|| missing("statistic"))?;
        y.t()?.matmul(y)? / y.dim(0)? as f64
    }

    fn inverse_matrix(&self) -> Result<Tensor> {
        let y = self.ema.as_ref().ok_or_else(|| missing("statistic"))?;
        let eye = Tensor::eye(y.dim(1)?, y.dtype(), y.device())?;
        self.apply_right(&eye)
    }

    fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()> {
        put(out, format!("{prefix}.ema"), self.ema.as_ref())?;
        for (j, y) in self.recent.iter().enumerate() {
            put(out, format!("{prefix}.recent.{j}"), Some(y))?;
        }
        match &self.inv {
            None => {}
            Some(Inverse::Dense(m)) => put(out, format!("{prefix}.inv"), Some(m))?,
            Some(Inverse::Woodbury { y, k_inv, damping }) => {
                put(out, format!("{prefix}.y"), Some(y))?;
                put(out, format!("{prefix}.k_inv"), Some(k_inv))?;
                let d = Tensor::new(&[*damping], &candle_core::Device::Cpu)?;
                out.insert(format!("{prefix}.damping"), d);
            }
        }
        Ok(())
    }

    fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()> {
        self.ema = take(src, &format!("{prefix}.ema"))?;
        self.recent = (0..self.depth)
            .map_while(|j| take(src, &format!("{prefix}.recent.{j}")).transpose())
            .collect::<Result<_>>()?;
        let dense = take(src, &format!("{prefix}.inv"))?;
        let y = take(src, &format!("{prefix}.y"))?;
        let k_inv = take(src, &format!("{prefix}.k_inv"))?;
        let damping = src.get(&format!("{prefix}.damping"));
        self.inv = match (dense, y, k_inv, damping) {
            (Some(m), _, _, _) => Some(Inverse::Dense(m)),
            (None, Some(y), Some(k_inv), Some(d)) => Some(Inverse::Woodbury {
                y,
                k_inv,
                damping: d.to_vec1::<f64>()?[0],
            }),
            _ => None,
        };
        Ok(())
    }
}
