//! The named choices the crates of this workspace share, declared once: which optimizer
//! ([`OptimizerKind`]), which stage of a training step ([`Stage`]), how a K-FAC factor is
//! inverted ([`DenseMethod`], [`InverseDtype`]), what kind of value a setting takes ([`param`])
//! and the [`settings!`](macro@settings) macro that declares a struct of settings. Each choice
//! has a stable lower-case name that the command line, sweep files, the results store and the
//! reports all spell the same way. Nothing here depends on candle, so the reports read the
//! store without the optimizers' numerical stack.

#![warn(missing_docs)]

pub mod choice;
pub mod factorisation;
pub mod optimizer;
pub mod param;
pub mod settings;
pub mod stage;

pub use choice::{Choice, UnknownChoice};
pub use factorisation::{DenseMethod, InverseDtype};
pub use optimizer::OptimizerKind;
pub use stage::Stage;

/// For [`choice!`]'s serde impls, so that a crate using that macro needs no serde of its own
/// ([`settings!`](macro@settings) derives with the calling crate's serde).
#[doc(hidden)]
pub use serde;
