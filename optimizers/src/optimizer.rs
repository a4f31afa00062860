//! The trait every optimizer implements, and construction by name.

use candle_core::backprop::GradStore;

use crate::curvature::{Approx, BlockOptions, DenseMethod, WoodburyMode};
use crate::error::{Error, Result};
use crate::kfac::{Fisher, Kfac, KfacConfig};
use crate::layer::{LayerStats, ParamSet};
use crate::state::OptimizerState;
use crate::timing::StageTimes;
use crate::{Adam, AdamConfig, Sgd, SgdConfig};

/// What the next step needs from the training loop besides the gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsRequest {
    /// Gradients only.
    None,
    /// Capture `A` and `G`, with `G` from the loss on the real labels (empirical Fisher).
    Empirical,
    /// Capture `A` and `G`, with `G` from a loss on labels sampled from the model's
    /// predictive distribution (true Fisher, paper eq. 3).
    Sampled,
}

/// A first- or second-order optimizer over one model's parameters.
///
/// The loop is: ask [`Optimizer::stats_request`], run forward/backward (capturing `A`/`G` when
/// asked), then call [`Optimizer::step`] with the gradients and the statistics.
pub trait Optimizer: Send {
    /// Name as accepted by [`OptimizerKind::parse`].
    fn name(&self) -> String;

    /// What the coming step needs captured. First-order methods need nothing.
    fn stats_request(&self) -> StatsRequest {
        StatsRequest::None
    }

    /// Applies one update. `stats`, when given, holds one entry per `ParamSet::layers` entry.
    /// Returns the seconds spent in the optimizer's own stages.
    fn step(&mut self, grads: &GradStore, stats: Option<&[LayerStats]>) -> Result<StageTimes>;

    fn learning_rate(&self) -> f64;
    fn set_learning_rate(&mut self, lr: f64);

    /// Steps taken so far.
    fn steps(&self) -> usize;

    /// Everything needed to continue bit-exactly from this step boundary (deep copies).
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a state from [`Optimizer::state`] of the same optimizer over the same model.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;

    /// For data-parallel training: how this process reaches the others. First-order methods
    /// need nothing beyond the averaged gradients the loop hands them; the K-FAC family
    /// exchanges its curvature statistics.
    fn set_communicator(&mut self, _comm: std::sync::Arc<dyn crate::comm::Communicator>) {}
}

/// The optimizers this crate builds by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Kfac,
    KfacSua,
    SkfacRs,
    /// Spatial subsampling; its sampling count is [`Hyper::samples`].
    SkfacSs,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 6] =
        ["sgd", "adam", "kfac", "kfac-sua", "skfac-rs", "skfac-ss"];
    const ALL: [OptimizerKind; 6] = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::Kfac,
        OptimizerKind::KfacSua,
        OptimizerKind::SkfacRs,
        OptimizerKind::SkfacSs,
    ];

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::UnknownOptimizer {
                name: name.to_string(),
                valid: Self::NAMES.join(", "),
            })
    }

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Kfac => "kfac",
            OptimizerKind::KfacSua => "kfac-sua",
            OptimizerKind::SkfacRs => "skfac-rs",
            OptimizerKind::SkfacSs => "skfac-ss",
        }
    }

    /// Whether this is one of the K-FAC family (uses curvature statistics).
    pub fn is_second_order(&self) -> bool {
        !matches!(self, OptimizerKind::Sgd | OptimizerKind::Adam)
    }
}

/// Hyper-parameters shared by the optimizers; each reads the fields it uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hyper {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Adam: decoupled weight decay (AdamW) instead of an L2 term in the gradient.
    pub decoupled_weight_decay: bool,
    /// K-FAC family: damping λ added to each factor.
    pub damping: f64,
    /// K-FAC family: steps between statistics refreshes.
    pub t_cov: usize,
    /// K-FAC family: steps between inverse refreshes.
    pub t_inv: usize,
    /// K-FAC family: moving-average decay β of the statistics (0 = latest batch only).
    pub stat_decay: f64,
    /// K-FAC family: KL-clip κ (0 = off).
    pub kl_clip: f64,
    pub fisher: Fisher,
    /// `skfac-ss`: positions sampled per example, `s'`.
    pub samples: usize,
    /// SKFAC: apply the Woodbury inverse without forming it, or form it.
    pub woodbury: WoodburyMode,
    /// K-FAC: eigendecomposition or Cholesky for the dense factors.
    pub dense_method: DenseMethod,
    /// Seeds the spatial subsampling.
    pub seed: u64,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decoupled_weight_decay: false,
            damping: 1e-3,
            t_cov: 20,
            t_inv: 200,
            stat_decay: 0.95,
            kl_clip: 1e-3,
            fisher: Fisher::Sampled,
            samples: 1,
            woodbury: WoodburyMode::Applied,
            dense_method: DenseMethod::Eigen,
            seed: 0,
        }
    }
}

/// Builds the optimizer `kind` over `params`.
pub fn build(kind: OptimizerKind, params: &ParamSet, h: &Hyper) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(
            params.all(),
            SgdConfig {
                lr: h.lr,
                momentum: h.momentum,
                weight_decay: h.weight_decay,
                nesterov: h.nesterov,
            },
        )?),
        OptimizerKind::Adam => Box::new(Adam::new(
            params.all(),
            AdamConfig {
                lr: h.lr,
                beta1: h.beta1,
                beta2: h.beta2,
                eps: h.eps,
                weight_decay: h.weight_decay,
                decoupled: h.decoupled_weight_decay,
            },
        )?),
        OptimizerKind::Kfac
        | OptimizerKind::KfacSua
        | OptimizerKind::SkfacRs
        | OptimizerKind::SkfacSs => {
            let approx = match kind {
                OptimizerKind::Kfac => Approx::Kfac,
                OptimizerKind::KfacSua => Approx::KfacSua,
                OptimizerKind::SkfacRs => Approx::ReduceSum,
                _ => Approx::Subsample(h.samples),
            };
            Box::new(Kfac::new(
                params,
                KfacConfig::from_hyper(kind.name(), approx, h),
            )?)
        }
    })
}

/// The block options a [`Hyper`] asks for.
pub(crate) fn block_options(h: &Hyper) -> BlockOptions {
    BlockOptions {
        dense: h.dense_method,
        woodbury: h.woodbury,
    }
}
