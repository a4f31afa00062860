//! Optimizers for candle models: SGD with momentum, Adam, and (through the same [`Optimizer`]
//! trait) the K-FAC family.
//!
//! The crate depends on candle only. A model tells an optimizer which of its parameters form
//! Linear/Conv2d layers ([`LayerSpec`]) and, on statistics steps, hands over each layer's input
//! rows `A` and pre-activation gradient rows `G` ([`LayerStats`]) as defined in
//! `docs/algorithms.md`. Everything else is a plain parameter.

pub mod comm;
pub mod curvature;
pub mod error;
pub mod kfac;
pub mod layer;
pub mod linalg;
pub mod optimizer;
pub mod schedule;
pub mod state;
pub mod timing;

mod adam;
mod fused;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use comm::{Channel, Communicator, Local, Traffic};
pub use error::{Error, Result};
pub use kfac::{Fisher, Kfac, KfacConfig};
pub use layer::{LayerKind, LayerSpec, LayerStats, NamedVar, ParamSet};
pub use optimizer::{build, Hyper, Optimizer, OptimizerKind, StatsRequest};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};
pub use state::OptimizerState;
pub use timing::{StageTimes, Stopwatch};
