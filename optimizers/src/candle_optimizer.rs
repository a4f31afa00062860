//! candle-nn's [`candle_nn::Optimizer`] for [`Sgd`] and [`Adam`]: a candle training loop swaps
//! them in for `candle_nn::SGD` or `candle_nn::AdamW` unchanged, one `backward_step(&loss)` a
//! step. Their configs default to this crate's defaults ([`Hyper::for_kind`]), declared there
//! once.

use candle_core::backprop::GradStore;
use candle_core::Var;

use crate::adam::Adam;
use crate::hyper::Hyper;
use crate::layer::NamedVar;
use crate::optimizer::Optimizer;
use crate::sgd::Sgd;
use kinds::OptimizerKind;

/// SGD's settings; `Default` is the crate's: lr 0.05, momentum 0.9, weight decay 5e-4 (an L2
/// term), no Nesterov.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0: plain SGD, as `candle_nn::SGD`).
    pub momentum: f64,
    /// An L2 term `weight_decay·w` in the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        let h = Hyper::for_kind(OptimizerKind::Sgd);
        SgdConfig {
            lr: h.lr,
            momentum: h.momentum,
            weight_decay: h.weight_decay,
            nesterov: h.nesterov,
        }
    }
}

impl SgdConfig {
    fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            ..Hyper::for_kind(OptimizerKind::Sgd)
        }
    }
}

/// Adam's settings; `Default` is the crate's: lr 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-8, weight decay
/// 5e-4 as an L2 term (`decoupled_weight_decay: true` makes it AdamW's).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Weight decay: an L2 term in the gradient, or decoupled.
    pub weight_decay: f64,
    /// Decay the weights directly (AdamW) instead of through the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        let h = Hyper::for_kind(OptimizerKind::Adam);
        AdamConfig {
            lr: h.lr,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            weight_decay: h.weight_decay,
            decoupled_weight_decay: h.decoupled_weight_decay,
        }
    }
}

impl AdamConfig {
    fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: self.decoupled_weight_decay,
            ..Hyper::for_kind(OptimizerKind::Adam)
        }
    }
}

/// The floating-point variables, named by position (as candle-nn's optimizers, which skip
/// integer variables too).
fn named(vars: Vec<Var>) -> Vec<NamedVar> {
    vars.into_iter()
        .filter(|v| v.dtype().is_float())
        .enumerate()
        .map(|(i, var)| NamedVar {
            name: format!("param{i}"),
            var,
        })
        .collect()
}

/// candle-nn's `Optimizer` for one of this crate's first-order optimizers, built from its
/// config and stepping through this crate's [`Optimizer::step`] (no statistics).
macro_rules! candle_nn_optimizer {
    ($ty:ident, $config:ident) => {
        impl candle_nn::Optimizer for $ty {
            type Config = $config;

            fn new(vars: Vec<Var>, config: $config) -> candle_core::Result<Self> {
                $ty::from_hyper(named(vars), config.hyper()).map_err(candle_core::Error::from)
            }

            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                Optimizer::step(self, grads, None)
                    .map(|_| ())
                    .map_err(candle_core::Error::from)
            }

            fn learning_rate(&self) -> f64 {
                Optimizer::learning_rate(self)
            }

            fn set_learning_rate(&mut self, lr: f64) {
                Optimizer::set_learning_rate(self, lr)
            }
        }
    };
}

candle_nn_optimizer!(Sgd, SgdConfig);
candle_nn_optimizer!(Adam, AdamConfig);
