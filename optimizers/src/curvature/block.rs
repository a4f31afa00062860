//! One preconditioned layer: its two factors, the rows its variant feeds them, and the
//! gradient reshaping between the layer's parameters and `[∇W | ∇b]`.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, D};
use rand_chacha::ChaCha8Rng;

use super::{
    rows, DenseFactor, DenseMethod, Factor, FactorError, InverseDtype, LowRankFactor, RowAverage,
    SuaFactor, WoodburyMode,
};
use crate::comm::Communicator;
use crate::damping::{DampingSplit, FactorInit};
use crate::layer::{LayerKind, LayerSpec, LayerStats};

/// The curvature approximation of a K-FAC-family optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approx {
    /// Dense factors from all `M·T` rows.
    Kfac,
    /// As `Kfac`, with a [`SuaFactor`] for a Conv2d input factor.
    KfacSua,
    /// SKFAC Reduce Sum.
    ReduceSum,
    /// SKFAC Spatial Subsampling with `s'` positions per example.
    Subsample(usize),
}

impl Approx {
    /// The name a saved optimizer state records (these strings are in existing checkpoints).
    pub fn name(self) -> String {
        match self {
            Approx::Kfac => "Kfac".into(),
            Approx::KfacSua => "KfacSua".into(),
            Approx::ReduceSum => "ReduceSum".into(),
            Approx::Subsample(s) => format!("Subsample({s})"),
        }
    }
}

/// How a block inverts its factors ([`crate::Hyper::block_options`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOptions {
    /// For dense and SUA factors.
    pub dense: DenseMethod,
    /// The precision of every factorisation.
    pub precision: InverseDtype,
    /// For low-rank (SKFAC) factors.
    pub woodbury: WoodburyMode,
    /// Where dense and SUA factors' moving averages start.
    pub init: FactorInit,
    /// How the damping is shared between the two factors.
    pub split: DampingSplit,
    /// Which rows make low-rank (SKFAC) factors.
    pub rows: RowAverage,
    /// How many batches [`RowAverage::Stack`] keeps.
    pub stack: usize,
}

/// Attempts at a refresh: the damping λ, then 10λ, 100λ and 1000λ, each shared between the
/// factors by the block's [`DampingSplit`].
pub const REFRESH_ATTEMPTS: usize = 4;

/// The curvature block `Ω ⊗ Γ` of one preconditioned layer: an input factor `Ω` over
/// `A_aug`'s rows and an output-gradient factor `Γ` over `G`'s.
pub struct Block {
    /// The layer.
    pub spec: LayerSpec,
    approx: Approx,
    split: DampingSplit,
    omega: Box<dyn Factor>,
    gamma: Box<dyn Factor>,
}

impl Block {
    /// A block with empty factors of the kinds `approx` uses for `spec`'s layer.
    pub fn new(spec: LayerSpec, approx: Approx, opts: BlockOptions) -> Self {
        let bias = spec.bias.is_some();
        let (omega, gamma): (Box<dyn Factor>, Box<dyn Factor>) = match (approx, spec.kind) {
            (Approx::Kfac, _) | (Approx::KfacSua, LayerKind::Linear { .. }) => (
                Box::new(DenseFactor::new(opts.dense, opts.precision, opts.init)),
                Box::new(DenseFactor::new(opts.dense, opts.precision, opts.init)),
            ),
            (
                Approx::KfacSua,
                LayerKind::Conv2d {
                    c_in,
                    kh,
                    kw,
                    layout,
                    ..
                },
            ) => (
                Box::new(SuaFactor::new(
                    kh * kw,
                    c_in,
                    layout,
                    bias,
                    opts.dense,
                    opts.precision,
                    opts.init,
                )),
                Box::new(DenseFactor::new(opts.dense, opts.precision, opts.init)),
            ),
            (Approx::ReduceSum | Approx::Subsample(_), _) => (
                Box::new(LowRankFactor::new(
                    opts.woodbury,
                    opts.precision,
                    opts.rows,
                    opts.stack,
                )),
                Box::new(LowRankFactor::new(
                    opts.woodbury,
                    opts.precision,
                    opts.rows,
                    opts.stack,
                )),
            ),
        };
        Block {
            spec,
            approx,
            split: opts.split,
            omega,
            gamma,
        }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Folds one batch of this layer's statistics into both factors. `rng` seeds the
    /// spatial subsampling (one stream per example). In a data-parallel job `stats` hold this
    /// process's equal shard of the global batch, and the factors exchange what they need
    /// through `comm` ([`crate::Local`] alone).
    pub fn observe(
        &mut self,
        stats: &LayerStats,
        decay: f64,
        rng: &ChaCha8Rng,
        comm: &dyn Communicator,
    ) -> Result<()> {
        let (a, g) = match self.approx {
            Approx::Kfac | Approx::KfacSua => rows::all(stats)?,
            Approx::ReduceSum => rows::reduce_sum(stats)?,
            Approx::Subsample(s) => rows::subsample(stats, s, rng, comm.rank() * stats.batch)?,
        };
        self.omega.observe(&a, decay, comm)?;
        self.gamma.observe(&g, decay, comm)
    }

    /// `(λ_Ω, λ_Γ)`: the damping `lambda` shared between the two factors as the block's
    /// [`DampingSplit`] says, from their current statistics.
    pub fn damping_split(&self, lambda: f64) -> std::result::Result<(f64, f64), FactorError> {
        Ok(match self.split {
            DampingSplit::Pi => self.split.split(
                lambda,
                self.omega.mean_diagonal()?,
                self.gamma.mean_diagonal()?,
            ),
            other => other.split(lambda, 1.0, 1.0),
        })
    }

    /// Refreshes both inverses, and returns the damping that worked: attempt `a` shares
    /// `10^a·λ` between the factors, up to `REFRESH_ATTEMPTS` attempts (each factor's own
    /// f32-to-f64 retry comes first). On a numerical failure the inverses are dropped (the
    /// layer takes its plain gradient) and the last error returned; a failed tensor operation
    /// ([`FactorError::Candle`]: a bad state, a device or library error) is returned at once,
    /// since more damping cannot mend it.
    pub fn refresh(&mut self, damping: f64) -> std::result::Result<f64, FactorError> {
        let mut last = FactorError::NotPositiveDefinite;
        for attempt in 0..REFRESH_ATTEMPTS {
            let lambda = damping * 10f64.powi(attempt as i32);
            let (omega, gamma) = self.damping_split(lambda)?;
            match self
                .omega
                .refresh(omega)
                .and_then(|_| self.gamma.refresh(gamma))
            {
                Ok(()) => return Ok(lambda),
                Err(e @ FactorError::Candle(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(layer = %self.spec.name, damping = lambda, error = %e, "factorisation failed; retrying with 10x damping");
                    last = e;
                }
            }
        }
        self.clear_inverse();
        tracing::warn!(layer = %self.spec.name, "no usable inverse; the layer takes its plain gradient until the next refresh");
        Err(last)
    }

    /// The shapes of both factors' [`Factor::inverse_parts`], Ω's first (K-FAC and SUA only).
    pub fn inverse_shapes(&self) -> std::result::Result<Vec<(usize, usize)>, FactorError> {
        let mut shapes = self.omega.inverse_shapes()?;
        shapes.extend(self.gamma.inverse_shapes()?);
        Ok(shapes)
    }

    /// Both factors' inverses as the tensors another process needs, Ω's first.
    pub fn inverse_parts(&self) -> std::result::Result<Vec<Tensor>, FactorError> {
        let mut parts = self.omega.inverse_parts()?;
        parts.extend(self.gamma.inverse_parts()?);
        Ok(parts)
    }

    /// Takes the inverses another process computed when its refresh succeeded at `damping`
    /// (what [`Block::refresh`] returned there), from its [`Block::inverse_parts`].
    pub fn set_inverse(
        &mut self,
        mut parts: Vec<Tensor>,
        damping: f64,
    ) -> std::result::Result<(), FactorError> {
        let (omega, gamma) = self.damping_split(damping)?;
        let gamma_parts = parts.split_off(self.omega.inverse_shapes()?.len());
        self.omega.set_inverse(parts, omega)?;
        self.gamma.set_inverse(gamma_parts, gamma)?;
        Ok(())
    }

    /// Drops both inverses: the layer takes its plain gradient until the next refresh.
    pub fn clear_inverse(&mut self) {
        self.omega.clear_inverse();
        self.gamma.clear_inverse();
    }

    /// Whether the block's inverses can be computed by one process and shared (K-FAC's and
    /// SUA's, not SKFAC's; [`super::shared`]).
    pub fn shares_inverses(&self) -> bool {
        matches!(self.approx, Approx::Kfac | Approx::KfacSua)
    }

    /// Whether both factors hold an inverse, so that [`Block::precondition`] applies them.
    pub fn has_inverse(&self) -> bool {
        self.omega.has_inverse() && self.gamma.has_inverse()
    }

    /// `(Γ+λI)⁻¹ V (Ω+λI)⁻¹`, or `None` without an inverse.
    pub fn precondition(&self, v: &Tensor) -> Result<Option<Tensor>> {
        if !self.has_inverse() {
            return Ok(None);
        }
        let right = self.omega.apply_right(v)?;
        Ok(Some(self.gamma.apply_left(&right)?))
    }

    /// `[∇W | ∇b]` as a `[out, in(+1)]` matrix, or `None` if the weight got no gradient.
    pub fn gradient_matrix(&self, grads: &GradStore) -> Result<Option<Tensor>> {
        let Some(gw) = grads.get(self.spec.weight.as_tensor()) else {
            return Ok(None);
        };
        let out = self.spec.kind.outputs();
        let gw = gw.contiguous()?.reshape((out, self.spec.kind.inputs()))?;
        Ok(Some(match &self.spec.bias {
            Some(b) => {
                let gb = match grads.get(b.as_tensor()) {
                    Some(gb) => gb.reshape((out, 1))?,
                    None => Tensor::zeros((out, 1), gw.dtype(), gw.device())?,
                };
                Tensor::cat(&[&gw, &gb], D::Minus1)?
            }
            None => gw,
        }))
    }

    /// Splits a `[out, in(+1)]` matrix back into weight- and bias-shaped tensors.
    pub fn split(&self, m: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let inputs = self.spec.kind.inputs();
        let w = m
            .narrow(1, 0, inputs)?
            .contiguous()?
            .reshape(self.spec.weight.shape())?;
        let b = match &self.spec.bias {
            Some(_) => Some(m.narrow(1, inputs, 1)?.contiguous()?.flatten_all()?),
            None => None,
        };
        Ok((w, b))
    }

    /// The two factors, for tests and diagnostics: `(Ω, Γ)`.
    pub fn factors(&self) -> (&dyn Factor, &dyn Factor) {
        (self.omega.as_ref(), self.gamma.as_ref())
    }

    /// Appends both factors' tensors under `prefix.omega` and `prefix.gamma`.
    pub fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()> {
        self.omega.save(&format!("{prefix}.omega"), out)?;
        self.gamma.save(&format!("{prefix}.gamma"), out)
    }

    /// Restores what [`Block::save`] wrote under `prefix`.
    pub fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()> {
        self.omega.load(&format!("{prefix}.omega"), src)?;
        self.gamma.load(&format!("{prefix}.gamma"), src)
    }
}
