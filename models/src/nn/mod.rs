//! K-FAC-ready layers for a model written with candle-nn.
//!
//! [`Curvature::linear`] and [`Curvature::conv2d`] take candle-nn's arguments and make
//! candle-nn's layers (`candle_nn::linear`, `candle_nn::conv2d`: the same NCHW layout, variable
//! names, shapes and initialisation, so candle-nn checkpoints load as they are) that also record
//! K-FAC's `A` and `G` when asked. A model written with candle-nn trains with SKFAC by changing
//! only where its layers come from; [`KfacOptimizer`] is candle-nn's `Optimizer` for the whole
//! K-FAC family, one `backward_step(&loss)` a step:
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{loss::cross_entropy, Conv2dConfig, Optimizer, VarBuilder, VarMap};
//! use models::nn::{Curvature, KfacOptimizer, KfacOptimizerConfig};
//! use optimizers::OptimizerKind;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let curv = Curvature::new();
//! // candle_nn::conv2d(1, 8, 3, ..) and candle_nn::linear(..), from the Curvature instead.
//! let conv = curv.conv2d(1, 8, 3, Conv2dConfig::default(), vb.pp("conv"))?;
//! let fc = curv.linear(8 * 26 * 26, 10, vb.pp("fc"))?;
//! let config = KfacOptimizerConfig::new(OptimizerKind::SkfacRs, &curv);
//! let mut opt = KfacOptimizer::new(varmap.all_vars(), config)?;
//!
//! let x = Tensor::zeros((4, 1, 28, 28), DType::F32, &Device::Cpu)?;
//! let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu)?;
//! let logits = fc.forward(&conv.forward(&x)?.relu()?.flatten_from(1)?)?;
//! opt.backward_step(&cross_entropy(&logits, &y)?)?;
//! # Ok(())
//! # }
//! ```
//!
//! A loop of its own can drive any [`optimizers::Optimizer`] instead: before each forward pass
//! tell the `Curvature` what the optimizer asked for ([`Curvature::capture_next`]), after the
//! backward pass take the statistics ([`Curvature::statistics`]); [`Curvature::param_set`]
//! tells the optimizer which variables form which layer. The probe behind the capture
//! ([`crate::capture`]) stays out of sight.

mod layers;
mod optimizer;

pub use crate::label_sampling::fisher_seed;
pub use layers::{Conv2d, Linear};
pub use optimizer::{KfacOptimizer, KfacOptimizerConfig};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use optimizers::{ConvLayout, LayerKind, LayerSpec, LayerStats, NamedVar, ParamSet, StatsRequest};

use crate::capture::{self, Capture, CapturedLayer};
use crate::label_sampling::sampled_gradients;

/// The layers one [`Curvature`] made, whether the next forward pass captures, and the output of
/// the last layer that did.
#[derive(Default)]
struct Shared {
    layers: Mutex<Vec<CapturedLayer>>,
    capturing: AtomicBool,
    request: Mutex<Option<StatsRequest>>,
    /// The last capturing layer's output: a classifier's logits when it ends in such a layer.
    output: Mutex<Option<Tensor>>,
}

impl Shared {
    fn capturing(&self) -> bool {
        self.capturing.load(Ordering::Relaxed)
    }

    /// Keeps `out` as the latest capturing output and hands it back.
    fn record_output(&self, out: Tensor) -> Result<Tensor> {
        *self.output.lock().expect("output poisoned") = Some(out.clone());
        Ok(out)
    }
}

/// Makes K-FAC-ready layers and collects their statistics for the optimizer. Cheap to clone;
/// clones share the layers.
#[derive(Clone, Default)]
pub struct Curvature {
    shared: Arc<Shared>,
}

/// The variable behind a tensor a [`VarBuilder`] returned: the optimizer updates it in place.
fn variable(t: &Tensor, name: &str) -> Result<Var> {
    if !t.is_variable() {
        candle_core::bail!(
            "{name} is not a variable: build K-FAC-ready layers from VarBuilder::from_varmap \
             (and load a checkpoint with VarMap::load)"
        );
    }
    Var::from_tensor(t)
}

impl Curvature {
    /// A `Curvature` that has made no layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a layer over `weight` and `bias` (tensors of `vb`'s map) and returns its
    /// capture slot.
    fn register(
        &self,
        vb: &VarBuilder,
        kind: LayerKind,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Arc<Capture>> {
        let name = vb.prefix();
        let weight = variable(weight, &format!("{name}.weight"))?;
        let bias = bias
            .map(|b| variable(b, &format!("{name}.bias")))
            .transpose()?;
        let (spec, capture) = capture::layer(name, kind, &weight, &bias);
        let mut layers = self.shared.layers.lock().expect("layer list poisoned");
        layers.push((spec, capture.clone()));
        Ok(capture)
    }

    /// `candle_nn::linear(inputs, outputs, vb)`: weight `{prefix}.weight` `[outputs, inputs]`
    /// and bias `{prefix}.bias` `[outputs]`, made or fetched by `vb`.
    ///
    /// # Errors
    ///
    /// When `vb` cannot provide the variables (a shape clash with existing ones), or returns
    /// tensors that are not variables: build from `VarBuilder::from_varmap`.
    pub fn linear(&self, inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
        self.linear_b(inputs, outputs, true, vb)
    }

    /// `candle_nn::linear_no_bias`; otherwise as [`Curvature::linear`].
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`].
    pub fn linear_no_bias(&self, inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
        self.linear_b(inputs, outputs, false, vb)
    }

    /// `candle_nn::linear_b`: a Linear layer with or without a bias.
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`].
    pub fn linear_b(
        &self,
        inputs: usize,
        outputs: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Linear> {
        let inner = candle_nn::linear_b(inputs, outputs, bias, vb.clone())?;
        let kind = LayerKind::Linear { inputs, outputs };
        let capture = self.register(&vb, kind, inner.weight(), inner.bias())?;
        Ok(Linear {
            inner,
            capture,
            shared: self.shared.clone(),
        })
    }

    /// `candle_nn::conv2d(c_in, c_out, k, cfg, vb)`: a `k×k` convolution on NCHW input with
    /// weight `{prefix}.weight` `[c_out, c_in, k, k]` and bias `{prefix}.bias` `[c_out]`.
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`]; also for a dilation or group count other than 1, which K-FAC's
    /// convolution factors do not cover.
    pub fn conv2d(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        self.conv2d_b(c_in, c_out, k, cfg, true, vb)
    }

    /// `candle_nn::conv2d_no_bias`; otherwise as [`Curvature::conv2d`].
    ///
    /// # Errors
    ///
    /// As [`Curvature::conv2d`].
    pub fn conv2d_no_bias(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        self.conv2d_b(c_in, c_out, k, cfg, false, vb)
    }

    fn conv2d_b(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        if cfg.dilation != 1 || cfg.groups != 1 {
            candle_core::bail!(
                "{}: K-FAC-ready Conv2d takes dilation 1 and groups 1 (got {} and {}); \
                 use candle_nn::conv2d for this layer, which then trains with its plain rule",
                vb.prefix(),
                cfg.dilation,
                cfg.groups
            );
        }
        let inner = if bias {
            candle_nn::conv2d(c_in, c_out, k, cfg, vb.clone())?
        } else {
            candle_nn::conv2d_no_bias(c_in, c_out, k, cfg, vb.clone())?
        };
        let kind = LayerKind::Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride: cfg.stride,
            padding: cfg.padding,
            layout: ConvLayout::ChannelsFirst,
        };
        let capture = self.register(&vb, kind, inner.weight(), inner.bias())?;
        Ok(Conv2d {
            inner,
            capture,
            shared: self.shared.clone(),
        })
    }

    /// Whether the coming forward pass records statistics: pass the optimizer's
    /// [`optimizers::Optimizer::stats_request`] before every forward pass. The layers capture
    /// on every forward pass until [`Curvature::statistics`] or a [`StatsRequest::None`]
    /// (which also drops anything captured) turns capturing off.
    pub fn capture_next(&self, request: StatsRequest) {
        let on = request != StatsRequest::None;
        self.shared.capturing.store(on, Ordering::Relaxed);
        *self.shared.request.lock().expect("request poisoned") = on.then_some(request);
        if !on {
            self.clear();
        }
    }

    /// What the optimizer needs from this step: `None` on steps without statistics, else one
    /// [`LayerStats`] per layer of [`Curvature::param_set`]. `logits` are the model's outputs
    /// of the capturing pass and `grads` the gradients of its (cross-entropy) loss. For the
    /// true Fisher ([`StatsRequest::Sampled`]) `G` comes from a second backward pass, of the
    /// loss on labels drawn from `softmax(logits)` with `seed`
    /// ([`crate::label_sampling::sample_labels`]): pass a new seed every step. One process's
    /// labels: a data-parallel loop uses [`KfacOptimizer`], which draws each shard's share of
    /// the global batch's. Turns capturing off.
    ///
    /// # Errors
    ///
    /// When statistics were asked for but a layer captured nothing (it did not run since
    /// [`Curvature::capture_next`]), or a tensor operation or the second backward pass fails.
    pub fn statistics(
        &self,
        logits: &Tensor,
        grads: &GradStore,
        seed: u64,
    ) -> Result<Option<Vec<LayerStats>>> {
        self.collect(Some(logits), grads, seed, 0)
    }

    /// [`Curvature::statistics`], with the last capturing layer's output as the logits when
    /// `logits` is `None`, for process `shard` of a data-parallel job whose shards are equal
    /// (its rows are rows `shard·M..` of the global batch, so it draws that batch's labels).
    fn collect(
        &self,
        logits: Option<&Tensor>,
        grads: &GradStore,
        seed: u64,
        shard: usize,
    ) -> Result<Option<Vec<LayerStats>>> {
        let request = self.shared.request.lock().expect("request poisoned").take();
        self.shared.capturing.store(false, Ordering::Relaxed);
        let output = self.shared.output.lock().expect("output poisoned").take();
        match request {
            None | Some(StatsRequest::None) => Ok(None),
            Some(StatsRequest::Empirical) => self.take(grads).map(Some),
            Some(StatsRequest::Sampled) => {
                let Some(logits) = logits.cloned().or(output) else {
                    candle_core::bail!(
                        "no layer captured an output: call capture_next before the forward pass"
                    );
                };
                if logits.rank() != 2 {
                    candle_core::bail!(
                        "the true Fisher samples labels from [batch, classes] logits, but the \
                         last K-FAC-ready layer's output is {:?}: pass the logits \
                         (backward_step_with_logits) or use fisher = empirical",
                        logits.dims()
                    );
                }
                let first_row = shard * logits.dim(0)?;
                self.take(&sampled_gradients(&logits, seed, first_row)?)
                    .map(Some)
            }
        }
    }

    fn take(&self, grads: &GradStore) -> Result<Vec<LayerStats>> {
        let layers = self.shared.layers.lock().expect("layer list poisoned");
        capture::take_all(&layers, grads, "call capture_next before the forward pass")
    }

    fn clear(&self) {
        for (_, cap) in self
            .shared
            .layers
            .lock()
            .expect("layer list poisoned")
            .iter()
        {
            cap.clear();
        }
        *self.shared.output.lock().expect("output poisoned") = None;
    }

    /// The optimizer's view of `varmap`: the layers this `Curvature` made, in creation order,
    /// and every other variable of `varmap` (BatchNorm scales, embeddings) as a plain
    /// parameter, by name.
    pub fn param_set(&self, varmap: &VarMap) -> ParamSet {
        let mut vars: Vec<NamedVar> = varmap
            .data()
            .lock()
            .expect("varmap poisoned")
            .iter()
            .map(|(name, var)| NamedVar {
                name: name.clone(),
                var: var.clone(),
            })
            .collect();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        self.params_from(vars)
    }

    /// The layers this `Curvature` made, and those of `vars` that are none of theirs.
    fn params_from(&self, vars: Vec<NamedVar>) -> ParamSet {
        let layers: Vec<LayerSpec> = self
            .shared
            .layers
            .lock()
            .expect("layer list poisoned")
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        let taken: HashSet<_> = layers
            .iter()
            .flat_map(|l| std::iter::once(&l.weight).chain(l.bias.as_ref()))
            .map(|v| v.as_tensor().id())
            .collect();
        let others = vars
            .into_iter()
            .filter(|v| !taken.contains(&v.var.as_tensor().id()))
            .collect();
        ParamSet { layers, others }
    }
}
