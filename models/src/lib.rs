//! Candle models whose Linear and Conv2d layers expose K-FAC's curvature statistics.
//!
//! Candle has no forward/backward hooks, so each preconditioned layer captures, on statistics
//! steps only, its input rows `A` (for Conv2d the im2col patches it multiplies anyway) and adds
//! a zero-valued probe variable to its pre-activation output, whose gradient is `∂L/∂s`
//! (see [`capture`]). Tensors are NHWC throughout: the im2col rows of an NHWC tensor are runs of
//! contiguous channels, and a convolution's matmul output `[N*H*W, C]` already is the next
//! NHWC activation, with no transpose.

pub mod builder;
pub mod capture;
pub mod layers;
pub mod module;
pub mod nets;
pub mod network;
pub mod ops;

pub use builder::Builder;
pub use module::{Ctx, Module};
pub use network::{build, ModelConfig, ModelError, Network, MODEL_NAMES};
