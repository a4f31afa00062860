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

    /// Applies one update, in place, to every parameter that has a gradient in `grads`.
    /// `stats`, when given, holds one entry per [`crate::ParamSet::layers`] entry, in that
    /// order; SGD and Adam ignore them, the K-FAC family folds in any it is given (asked for
    /// or not). Returns the seconds spent in the optimizer's own stages when timing is on
    /// ([`Optimizer::set_timing`]), zeros otherwise.
    ///
    /// Fails on statistics for the wrong number of layers and on mismatched shapes or dtypes;
    /// after an `Err`, some parameters may have been updated.
    fn step(&mut self, grads: &GradStore, stats: Option<&[LayerStats]>) -> Result<StageTimes>;

    /// Whether [`Optimizer::step`] times its stages (off by default: on a GPU every stage
    /// boundary then waits for the device).
    fn set_timing(&mut self, _on: bool) {}

    /// The learning rate the next step uses.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate of the following steps (a schedule calls this every step).
    fn set_learning_rate(&mut self, lr: f64);

    /// Sets the damping λ of the following inverse refreshes, until a decay schedule
    /// (`damping_decay` ≠ 1) sets the next. First-order methods have none.
    fn set_damping(&mut self, _damping: f64) {}

    /// The steps in an epoch, which a decaying damping (`damping_decay` ≠ 1,
    /// [`crate::Hyper::damping_at`]) counts its epochs in: the K-FAC family then sets λ itself
    /// every step, and refuses to step without it. Kept in the saved state.
    fn set_steps_per_epoch(&mut self, _steps: usize) {}

    /// Steps taken so far.
    fn steps(&self) -> usize;

    /// Layer inverse refreshes in this process that failed at every damping, so that the layer
    /// took its plain gradient until its next refresh (first-order methods have none). A
    /// benchmark uses it to tell a configuration that trains from one that quietly does not.
    fn failed_refreshes(&self) -> usize {
        0
    }

    /// Everything needed to continue bit-exactly from this step boundary (deep copies).
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a state from [`Optimizer::state`] of the same optimizer over the same model.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;

    /// For data-parallel training: how this process reaches the others. First-order methods
    /// need nothing beyond the averaged gradients the loop hands them; the K-FAC family
    /// exchanges its curvature statistics.
    fn set_communicator(&mut self, _comm: std::sync::Arc<dyn crate::comm::Communicator>) {}
}
