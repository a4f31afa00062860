//! The trait every optimizer implements, and construction by name.

use candle_core::backprop::GradStore;

use crate::error::{Error, Result};
use crate::layer::{LayerStats, ParamSet};
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
    /// Name as accepted by [`build`] (with the sampling count for `skfac-ss`).
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
}

/// The optimizers this crate builds by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 2] = ["sgd", "adam"];

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(Error::UnknownOptimizer {
                name: name.to_string(),
                valid: Self::NAMES.join(", "),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
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
    })
}
