//! The trait every optimizer implements.

use candle_core::backprop::GradStore;

use crate::error::Result;
use crate::layer::LayerStats;
use crate::state::OptimizerState;
use crate::timing::StageTimes;

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
    /// Name as accepted by [`crate::OptimizerKind`]'s `parse`.
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
