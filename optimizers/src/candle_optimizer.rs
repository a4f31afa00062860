//! candle-nn's [`candle_nn::Optimizer`] for [`Sgd`] and [`Adam`]: a candle training loop swaps
//! them in for `candle_nn::SGD` or `candle_nn::AdamW` unchanged, one `backward_step(&loss)` a
//! step, configured by [`SgdConfig`] and [`AdamConfig`].

use candle_core::backprop::GradStore;
use candle_core::Var;

use crate::adam::Adam;
use crate::config::{AdamConfig, SgdConfig};
use crate::layer::NamedVar;
use crate::optimizer::Optimizer;
use crate::sgd::Sgd;

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
