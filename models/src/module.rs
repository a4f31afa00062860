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
    /// Evaluation: BatchNorm uses its running statistics, parameters are detached from the
    /// autograd graph, nothing is captured.
    pub const EVAL: Ctx = Ctx {
        train: false,
        capture: false,
    };
    /// Training without statistics: the pass of ordinary optimizer steps.
    pub const TRAIN: Ctx = Ctx {
        train: true,
        capture: false,
    };
    /// Training that also records `A` and attaches `G` probes: the pass of statistics steps.
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

/// A layer or network: a differentiable map of tensors whose behaviour depends on the pass
/// ([`Ctx`]). Unlike [`candle_core::Module`], it is told whether it trains and captures.
pub trait Module: Send + Sync {
    /// The output for input `x` (NHWC for image layers, `[M, features]` rows for Linear).
    ///
    /// # Errors
    ///
    /// When `x` has a shape, dtype or device the module cannot take, or a tensor operation
    /// fails.
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor>;
}
