//! Candle networks whose Linear and Conv2d layers capture the curvature statistics of K-FAC
//! and its relatives, for the optimizers of the `optimizers` crate.
//!
//! A K-FAC-family optimizer preconditions each Linear and Conv2d layer with two matrices built
//! from that layer's inputs `A` and its pre-activation gradients `G`. Candle has no
//! forward/backward hooks to read them, so the layers of this crate record them themselves.
//! There are two ways in:
//!
//! - **The built-in models, by name.** [`build`] makes one of [`MODEL_NAMES`] (an MLP,
//!   ResNet-8/20/34 and VGG-11 for CIFAR-sized images, ResNet-50) as a [`Network`], which
//!   hands the optimizer its parameters ([`Network::param_set`]) and, after a capturing step,
//!   the statistics of every layer ([`Network::take_stats`]).
//! - **A model of your own, written with candle-nn.** [`nn::Curvature`] makes candle-nn's
//!   `Linear` and `Conv2d` (NCHW, candle-nn's variables and checkpoints) that also capture,
//!   and [`nn::KfacOptimizer`] is candle-nn's `Optimizer` for the K-FAC family over them; the
//!   module documentation has a complete example.
//!
//! # A training loop with a built-in network
//!
//! Each step asks the optimizer what it needs ([`optimizers::Optimizer::stats_request`]). On
//! statistics steps the forward pass runs under [`Ctx::CAPTURE`], otherwise under
//! [`Ctx::TRAIN`]. After the backward pass of the loss, [`Network::take_stats`] turns the
//! captured rows into one [`optimizers::LayerStats`] per layer, given the gradients of the loss
//! that defines `G`: the real labels' loss for the empirical Fisher, a loss on labels drawn
//! from the model's own predictions ([`label_sampling::sample_labels`]) for the true Fisher. The step
//! itself always preconditions the real labels' gradients.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use candle_nn::loss::cross_entropy;
//! use models::label_sampling::sample_labels;
//! use models::{Ctx, ModelConfig};
//! use optimizers::{build, Hyper, OptimizerKind, StatsRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dev = Device::Cpu;
//! let cfg = ModelConfig { input: (28, 28, 1), classes: 10, seed: 0 };
//! let net = models::build("mlp", &cfg, &dev)?;
//! let mut opt = build(OptimizerKind::SkfacRs, &net.param_set(), &Hyper::default())?;
//!
//! // A batch of four NHWC images and their labels.
//! let x = Tensor::randn(0f32, 1.0, (4, 28, 28, 1), &dev)?;
//! let y = Tensor::new(&[3u32, 1, 4, 1], &dev)?;
//! for step in 0..3 {
//!     let request = opt.stats_request();
//!     let ctx = if request == StatsRequest::None { Ctx::TRAIN } else { Ctx::CAPTURE };
//!     let logits = net.forward(&x, &ctx)?;
//!     let grads = cross_entropy(&logits, &y)?.backward()?;
//!     let stats = match request {
//!         StatsRequest::None => None,
//!         // G from the real labels' loss.
//!         StatsRequest::Empirical => Some(net.take_stats(&grads)?),
//!         // G from a second backward pass through the same forward pass, of the loss on
//!         // labels sampled from softmax(logits) (a fresh seed every step).
//!         StatsRequest::Sampled => {
//!             let sampled = sample_labels(&logits.detach(), step, 0)?;
//!             let fisher = cross_entropy(&logits, &sampled)?.backward()?;
//!             Some(net.take_stats(&fisher)?)
//!         }
//!     };
//!     opt.step(&grads, stats.as_deref())?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How the statistics are captured
//!
//! On a capturing pass each preconditioned layer keeps its input rows `A` (for a Conv2d, the
//! im2col patches it multiplies anyway) and adds a zero-valued probe variable to its
//! pre-activation output `s`. The sum equals `s`, and the probe's gradient is `∂L/∂s`, which
//! candle's `GradStore` does not keep for intermediate tensors ([`capture`]). Passes under
//! [`Ctx::TRAIN`] or [`Ctx::EVAL`] attach no probe and store nothing.
//!
//! # Conventions
//!
//! - **The built-in networks are NHWC**, `[N, H, W, C]`, throughout (the [`nn`] layers are
//!   candle-nn's NCHW): the im2col rows of an NHWC tensor are runs of contiguous channels, and
//!   a convolution's matmul output `[N·Ho·Wo, c_out]` already is the next NHWC activation,
//!   with no transpose.
//! - **Weights**: a Linear weight is `[out, in]`; a built-in Conv2d weight is
//!   `[c_out, kh, kw, c_in]`, i.e. the matrix `[c_out, kh·kw·c_in]` whose columns run kernel
//!   row, kernel column, channel, the order of the im2col columns (an [`nn`] Conv2d's is
//!   candle-nn's `[c_out, c_in, kh, kw]`, and its `A` follows that order). Biases are `[out]`.
//! - **Statistics**: per layer, `A` is `[M·T, in]` and `G` is `[M·T, out]`, one row per
//!   (example, output position), with `M` the batch size, `T = Ho·Wo` and `in = kh·kw·c_in`
//!   for a Conv2d, `T = 1` for a Linear layer. `G` is `∂L/∂s` **multiplied by `M`** (the loss
//!   is a batch mean), so that the gradient is `[∇W | ∇b] = Gᵀ A_aug / M`, with `A_aug` = `A`
//!   and a column of ones when the layer has a bias.
//! - **Probes only on capturing passes**: statistics exist only after a capturing forward
//!   pass, one under [`Ctx::CAPTURE`] for a [`Network`] ([`Network::take_stats`] is an `Err`
//!   otherwise), one after [`nn::Curvature::capture_next`] was given a request for statistics
//!   for [`nn`] layers. Every other pass costs nothing extra.
//!
//! The scalings the optimizers build on these statistics are set out in the repository's
//! `docs/algorithms.md`.

#![warn(missing_docs)]

pub mod builder;
pub mod capture;
pub mod label_sampling;
pub mod layers;
pub mod module;
pub mod nets;
pub mod network;
pub mod nn;
pub mod ops;

pub use builder::Builder;
pub use module::{Ctx, Module};
pub use network::{build, build_with_dtype, ModelConfig, ModelError, Network, MODEL_NAMES};
