//! Optimizers for candle models: SGD with momentum, Adam, and (through the same [`Optimizer`]
//! trait) the K-FAC family: K-FAC, K-FAC with SUA, SKFAC-RS and SKFAC-SS.
//!
//! The crate depends on candle only. A model tells an optimizer which of its parameters form
//! Linear/Conv2d layers ([`LayerSpec`]) and, on statistics steps, hands over each layer's input
//! rows `A` and pre-activation gradient rows `G` ([`LayerStats`]) as defined in the
//! repository's `docs/algorithms.md`. Everything else is a plain parameter. Every optimizer is
//! configured by one [`Hyper`] and built by [`build`].

pub mod choice;
pub mod comm;
pub mod curvature;
pub mod error;
pub mod kfac;
pub mod layer;
pub mod linalg;
pub mod optimizer;
pub mod param;
pub mod schedule;
pub mod state;
pub mod timing;

mod adam;
mod build;
mod fisher;
mod fused;
mod hyper;
mod kind;
mod momentum;
mod sgd;

pub use adam::Adam;
pub use build::build;
pub use choice::Choice;
pub use comm::{Channel, Communicator, Local, Traffic};
pub use error::{Error, Result};
pub use fisher::Fisher;
pub use hyper::Hyper;
pub use kfac::Kfac;
pub use kind::OptimizerKind;
pub use layer::{LayerKind, LayerSpec, LayerStats, NamedVar, ParamSet};
pub use optimizer::{Optimizer, StatsRequest};
pub use schedule::{LrSchedule, ScheduleKind};
pub use sgd::Sgd;
pub use state::OptimizerState;
pub use timing::{StageTimes, Stopwatch};
