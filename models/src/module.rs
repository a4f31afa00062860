//! What every layer and network is: a [`Module`] run forward under a [`Ctx`].

use candle_core::{Result, Tensor};

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    /// Training mode (BatchNorm uses and updates batch statistics).
    pub train: bool,
    /// Capture `A` and attach `G` probes in every Linear/Conv2d layer.
    pub capture: bool,
}

impl Ctx {
    pub const EVAL: Ctx = Ctx {
        train: false,
        capture: false,
    };
    pub const TRAIN: Ctx = Ctx {
        train: true,
        capture: false,
    };
    pub const CAPTURE: Ctx = Ctx {
        train: true,
        capture: true,
    };
}

impl Ctx {
    /// A parameter as this pass should see it: tracked for gradients in training, detached in
    /// evaluation so that no autograd graph (and none of its saved activations) is kept alive.
    pub fn param(&self, v: &candle_core::Var) -> Tensor {
        if self.train || self.capture {
            v.as_tensor().clone()
        } else {
            v.as_tensor().detach()
        }
    }
}

pub trait Module: Send + Sync {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor>;
}
