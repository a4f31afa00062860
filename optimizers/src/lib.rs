//! Optimizers for candle models: SGD with momentum, Adam, and the K-FAC family (K-FAC,
//! K-FAC-SUA, SKFAC-RS and SKFAC-SS), all behind one [`Optimizer`] trait.
//!
//! Every optimizer is configured by one [`Hyper`] (each reads the fields it uses) and built by
//! [`build`], as `build(kind, &params, &hyper)`, which returns a `Box<dyn Optimizer>`. `Hyper`
//! is the union of parts ([`Step`], [`Momentum`], [`Damping`], [`Periods`], ...), and each
//! optimizer's own config is built from the parts it reads ([`SgdConfig`], [`AdamConfig`],
//! [`KfacConfig`]; `config.hyper()` gives its `Hyper`):
//!
//! | [`OptimizerKind`] | method |
//! |---|---|
//! | `sgd` | SGD with momentum, weight decay, optional Nesterov momentum (PyTorch's convention) |
//! | `adam` | Adam with bias correction; L2 or decoupled (AdamW) weight decay |
//! | `kfac` | K-FAC: dense Kronecker factors `Ω ⊗ Γ` per layer |
//! | `kfac-sua` | K-FAC with spatially uncorrelated activations for convolution inputs |
//! | `skfac-rs` | SKFAC, Reduce Sum: low-rank factors of per-example means, Woodbury inverses |
//! | `skfac-ss` | SKFAC, Spatial Subsampling: low-rank factors of `s'` positions per example |
//!
//! The crate depends on candle, not on any model code: a model describes itself through
//! [`ParamSet`] and [`LayerStats`]. Parameters are updated in place by CPU kernels, so they
//! must be f32 or f64 tensors on the CPU.
//!
//! # Describing a model
//!
//! An optimizer works on a [`ParamSet`]: the model's Linear and Conv2d layers that the K-FAC
//! family preconditions ([`LayerSpec`]: weight, optional bias, [`LayerKind`]), and every other
//! trainable variable ([`NamedVar`]), which each optimizer steps with its plain rule. SGD and
//! Adam treat the layers as plain variables too.
//!
//! On the steps it asks for them, a K-FAC-family optimizer also needs each layer's input rows
//! `A` and pre-activation gradient rows `G` ([`LayerStats`]). For a candle model, the `models`
//! crate of this repository provides K-FAC-ready layers in its `models::nn` module: a
//! `Curvature` makes candle-nn's `Linear` and `Conv2d` layers that capture `A` and `G` on the
//! passes the optimizer asks for, and `KfacOptimizer` wraps a K-FAC-family optimizer as
//! candle-nn's `Optimizer` (one `backward_step(&loss)` a step) over them.
//!
//! # The training loop
//!
//! Each step: ask [`Optimizer::stats_request`] what to capture, run the forward pass (capturing
//! `A` when asked), the backward pass (and `G` when asked), then hand the gradients and the
//! statistics to [`Optimizer::step`]. The example builds a [`ParamSet`] by hand from one Linear
//! layer and fits it by least squares, for which `G` has a closed form:
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! use optimizers::{
//!     build, Hyper, LayerKind, LayerSpec, LayerStats, OptimizerKind, ParamSet, StatsRequest,
//! };
//!
//! # fn main() -> optimizers::Result<()> {
//! let dev = Device::Cpu;
//! // One Linear layer z = x Wᵀ + b: W is [out, in] = [2, 3], b is [out].
//! let weight = Var::zeros((2, 3), DType::F32, &dev)?;
//! let bias = Var::zeros(2, DType::F32, &dev)?;
//! let params = ParamSet {
//!     layers: vec![LayerSpec {
//!         name: "fc".into(),
//!         kind: LayerKind::Linear { inputs: 3, outputs: 2 },
//!         weight: weight.clone(),
//!         bias: Some(bias.clone()),
//!     }],
//!     others: vec![],
//! };
//! let kind = OptimizerKind::Kfac;
//! let hyper = Hyper { t_cov: 2, t_inv: 2, ..Hyper::for_kind(kind) };
//! let mut opt = build(kind, &params, &hyper)?;
//!
//! // A batch of M = 4 examples and their targets.
//! let x = Tensor::new(&[[1f32, 0., 2.], [0., 1., 1.], [1., 1., 0.], [2., 0., 1.]], &dev)?;
//! let y = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 1.], [2., 0.]], &dev)?;
//! let m = x.dim(0)?;
//!
//! for _ in 0..5 {
//!     let request = opt.stats_request();
//!     let z = x.matmul(&weight.t()?)?.broadcast_add(&bias)?;
//!     // The loss is a mean over the batch: L = Σ ‖z − y‖² / 2M.
//!     let loss = ((&z - &y)?.sqr()?.sum_all()? / (2 * m) as f64)?;
//!     let grads = loss.backward()?;
//!     let stats = match request {
//!         StatsRequest::None => None,
//!         request => {
//!             // G = M·∂L/∂z for the targets the request names: the real ones (empirical
//!             // Fisher) or ones drawn from the model's predictive distribution, here N(z, I)
//!             // (true Fisher). For this loss that is z − target.
//!             let target = match request {
//!                 StatsRequest::Sampled => (&z + z.randn_like(0.0, 1.0)?)?,
//!                 _ => y.clone(),
//!             };
//!             let g = (&z - &target)?.detach();
//!             // One entry per `params.layers` entry, in the same order. `a` is the layer's
//!             // input without a column of ones: `has_bias` makes the optimizer add it.
//!             Some(vec![LayerStats { a: x.clone(), g, batch: m, positions: 1, has_bias: true }])
//!         }
//!     };
//!     opt.step(&grads, stats.as_deref())?;
//! }
//! assert_eq!(opt.steps(), 5);
//! # Ok(())
//! # }
//! ```
//!
//! A learning-rate schedule is the loop's: an [`LrSchedule`] gives each step's rate, which goes
//! to [`Optimizer::set_learning_rate`]. A decaying damping is the optimizer's own, once it
//! knows the epoch length ([`Optimizer::set_steps_per_epoch`]).
//!
//! # Conventions
//!
//! The repository's `docs/algorithms.md` defines what every optimizer computes, in the
//! scalings the code uses. In short, for one layer, with `M` examples in the batch and `T`
//! output positions per example (1 for Linear, `Ho·Wo` for Conv2d):
//!
//! - `A` is `[M·T, in]`, one row per (example, position), each example's `T` rows
//!   consecutive, without the trailing column of ones a bias adds ([`LayerStats::a_augmented`]
//!   adds it).
//! - `G` is `[M·T, out]`, the gradient of the loss with respect to the pre-activation output,
//!   **multiplied by the batch size `M`** (the loss is a mean over the batch; this removes its
//!   `1/M`), so that the ordinary gradient is `[∇W | ∇b] = Gᵀ A_aug / M`.
//! - Linear weights are `[out, in]`, biases `[out]`.
//! - Conv2d weights are `[c_out, kh, kw, c_in]` (NHWC activations) or candle-nn's
//!   `[c_out, c_in, kh, kw]` (NCHW), as the layer's [`ConvLayout`] says: a `[c_out, kh·kw·c_in]`
//!   matrix either way, and the rows of `A` are im2col patches whose columns run in the
//!   weight's order, zeros where the window covers padding.
//! - [`StatsRequest::Sampled`] asks for `G` from labels sampled from the model's predictive
//!   distribution (true Fisher), [`StatsRequest::Empirical`] for `G` from the real labels
//!   ([`Hyper::fisher`] chooses).
//!
//! # Beyond one process and one run
//!
//! [`Optimizer::state`] and [`Optimizer::load_state`] save and restore everything needed to
//! continue bit-exactly ([`OptimizerState::save`] writes it to disk). A data-parallel job hands
//! each process's optimizer a [`Communicator`] ([`Optimizer::set_communicator`]); the K-FAC
//! family then exchanges its statistics so every process forms the same inverses.
//! [`Hyper::PARAMS`] lists every hyper-parameter with its kind and documentation, for command
//! lines and configuration files.

#![warn(missing_docs)]

pub mod comm;
pub mod curvature;
pub mod damping;
pub mod error;
pub mod kernels;
pub mod kfac;
pub mod layer;
pub mod linalg;
pub mod optimizer;
pub mod schedule;
pub mod state;
pub mod timing;

mod adam;
mod build;
mod candle_optimizer;
mod config;
mod fisher;
mod fused;
mod hyper;
mod momentum;
mod sgd;

pub use adam::Adam;
pub use build::build;
pub use comm::{Channel, Communicator, Local, Traffic};
pub use config::{AdamConfig, KfacConfig, SgdConfig};
pub use damping::{DampingSplit, FactorInit};
pub use error::{Error, Result};
pub use fisher::Fisher;
pub use hyper::{Damping, Factors, Hyper, Moments, Momentum, Periods, Rows, Seed, Step};
pub use kfac::Kfac;
pub use kinds::OptimizerKind;
pub use kinds::{choice, param, Choice, Stage, UnknownChoice};
pub use layer::{device_of, ConvLayout, LayerKind, LayerSpec, LayerStats, NamedVar, ParamSet};
pub use optimizer::{Optimizer, StatsRequest};
pub use schedule::{LrSchedule, ScheduleKind};
pub use sgd::Sgd;
pub use state::OptimizerState;
pub use timing::{StageTimes, Stopwatch};
