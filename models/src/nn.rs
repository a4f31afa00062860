//! K-FAC-ready layers for your own candle model.
//!
//! [`Linear`] and [`Conv2d`] are built like candle-nn's, from a [`VarBuilder`] over a
//! [`VarMap`], and run as [`candle_core::Module`]s. A [`Curvature`] makes them and keeps track
//! of them: before each forward pass, tell it what the optimizer asked for
//! ([`Curvature::capture_next`]); after the backward pass, it hands over each layer's `A`/`G`
//! statistics ([`Curvature::statistics`]), and [`Curvature::param_set`] tells the optimizer
//! which variables form which layer. The probe mechanism behind the capture
//! ([`crate::capture`]) stays out of sight.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{loss::cross_entropy, VarBuilder, VarMap};
//! use models::nn::{Conv2dConfig, Curvature};
//! use optimizers::{build, Hyper, OptimizerKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let curv = Curvature::new();
//! let conv = curv.conv2d(1, 8, 3, Conv2dConfig::default(), vb.pp("conv"))?;
//! let fc = curv.linear(8 * 26 * 26, 10, vb.pp("fc"))?;
//! let mut opt = build(OptimizerKind::SkfacRs, &curv.param_set(&varmap), &Hyper::default())?;
//!
//! let (x, y) = (Tensor::zeros((4, 28, 28, 1), DType::F32, &Device::Cpu)?, Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu)?);
//! curv.capture_next(opt.stats_request());
//! let logits = fc.forward(&conv.forward(&x)?.relu()?.flatten_from(1)?)?;
//! let grads = cross_entropy(&logits, &y)?.backward()?;
//! let stats = curv.statistics(&logits, &grads, 0)?;
//! opt.step(&grads, stats.as_deref())?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use optimizers::{LayerKind, LayerSpec, LayerStats, NamedVar, ParamSet, StatsRequest};

use crate::capture::{self, Capture, CapturedLayer};
use crate::fisher::sampled_gradients;
use crate::layers;
use crate::module::{Ctx, Module as _};
use crate::ops::Window;

/// The layers one [`Curvature`] made, and whether the next forward pass captures.
#[derive(Default)]
struct Shared {
    layers: Mutex<Vec<CapturedLayer>>,
    capturing: AtomicBool,
    request: Mutex<Option<StatsRequest>>,
}

/// Makes K-FAC-ready layers and collects their statistics for the optimizer. Cheap to clone;
/// clones share the layers.
#[derive(Clone, Default)]
pub struct Curvature {
    shared: Arc<Shared>,
}

/// Stride and zero padding of a [`Conv2d`], as candle-nn's `Conv2dConfig` (no groups or
/// dilation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Zero padding on each side of the height and width; 0 by default.
    pub padding: usize,
    /// Step of the window in both directions; 1 by default.
    pub stride: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            padding: 0,
            stride: 1,
        }
    }
}

/// `y = x Wᵀ + b` on rows `[M, in]`, recording `A` and `G` on capturing passes. The weight is
/// `[out, in]` ("weight") and the bias `[out]` ("bias"), initialised as candle-nn's `linear`.
pub struct Linear {
    inner: layers::Linear,
    shared: Arc<Shared>,
}

/// A 2-d convolution on **NHWC** input `[M, H, W, C]` (candle-nn's is NCHW), recording `A` and
/// `G` on capturing passes. The weight is `[c_out, k, k, c_in]` ("weight"; candle-nn's is
/// `[c_out, c_in, k, k]`), Kaiming-normal over the same fan-in as candle-nn's `conv2d`; the
/// bias `[c_out]` ("bias") is uniform in ±1/√fan-in. Output is NHWC.
pub struct Conv2d {
    inner: layers::Conv2d,
    shared: Arc<Shared>,
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x, &self.shared.ctx())
    }
}

impl candle_core::Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x, &self.shared.ctx())
    }
}

impl Shared {
    fn ctx(&self) -> Ctx {
        if self.capturing.load(Ordering::Relaxed) {
            Ctx::CAPTURE
        } else {
            Ctx::TRAIN
        }
    }
}

/// The variable behind a tensor a [`VarBuilder`] returned: the optimizer updates it in place.
fn variable(t: Tensor, name: &str) -> Result<Var> {
    if !t.is_variable() {
        candle_core::bail!(
            "{name} is not a variable: build K-FAC-ready layers from VarBuilder::from_varmap"
        );
    }
    Var::from_tensor(&t)
}

impl Curvature {
    /// A `Curvature` that has made no layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn register(
        &self,
        name: String,
        kind: LayerKind,
        weight: &Var,
        bias: &Option<Var>,
    ) -> Arc<Capture> {
        let (spec, capture) = capture::layer(name, kind, weight, bias);
        let mut layers = self.shared.layers.lock().expect("layer list poisoned");
        layers.push((spec, capture.clone()));
        capture
    }

    fn weights(
        vb: &VarBuilder,
        shape: &[usize],
        fan_in: usize,
        bias: Option<usize>,
    ) -> Result<(Var, Option<Var>)> {
        let w = vb.get_with_hints(shape, "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let weight = variable(w, &format!("{}.weight", vb.prefix()))?;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let bias = match bias {
            Some(n) => {
                let b = vb.get_with_hints(
                    n,
                    "bias",
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                )?;
                Some(variable(b, &format!("{}.bias", vb.prefix()))?)
            }
            None => None,
        };
        Ok((weight, bias))
    }

    /// A Linear layer `inputs → outputs` with a bias, like `candle_nn::linear`, whose
    /// variables `{prefix}.weight` (`[outputs, inputs]`) and `{prefix}.bias` (`[outputs]`) are
    /// made or fetched by `vb`.
    ///
    /// # Errors
    ///
    /// When `vb` cannot provide the variables (a shape clash with existing ones), or returns
    /// tensors that are not variables: build from `VarBuilder::from_varmap`.
    pub fn linear(&self, inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
        self.linear_with(inputs, outputs, true, vb)
    }

    /// A Linear layer, with or without a bias; otherwise as [`Curvature::linear`].
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`].
    pub fn linear_with(
        &self,
        inputs: usize,
        outputs: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Linear> {
        let (weight, b) = Self::weights(&vb, &[outputs, inputs], inputs, bias.then_some(outputs))?;
        let kind = LayerKind::Linear { inputs, outputs };
        let capture = self.register(vb.prefix(), kind, &weight, &b);
        Ok(Linear {
            inner: layers::Linear::new(weight, b, capture),
            shared: self.shared.clone(),
        })
    }

    /// A `k×k` convolution `c_in → c_out` with a bias, like `candle_nn::conv2d` but on NHWC
    /// tensors, whose variables `{prefix}.weight` (`[c_out, k, k, c_in]`) and `{prefix}.bias`
    /// (`[c_out]`) are made or fetched by `vb`.
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`].
    pub fn conv2d(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        self.conv2d_with(c_in, c_out, k, cfg, true, vb)
    }

    /// A `k×k` convolution, with or without a bias; otherwise as [`Curvature::conv2d`].
    ///
    /// # Errors
    ///
    /// As [`Curvature::linear`].
    pub fn conv2d_with(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        let fan_in = c_in * k * k;
        let (weight, b) = Self::weights(&vb, &[c_out, k, k, c_in], fan_in, bias.then_some(c_out))?;
        let kind = LayerKind::Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride: cfg.stride,
            padding: cfg.padding,
        };
        let capture = self.register(vb.prefix(), kind, &weight, &b);
        let win = Window {
            kh: k,
            kw: k,
            stride: cfg.stride,
            padding: cfg.padding,
        };
        Ok(Conv2d {
            inner: layers::Conv2d::new(weight, b, win, capture),
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
    /// loss on labels drawn from `softmax(logits)` with `seed` ([`crate::fisher::sample_labels`]). Turns
    /// capturing off.
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
        let request = self.shared.request.lock().expect("request poisoned").take();
        self.shared.capturing.store(false, Ordering::Relaxed);
        match request {
            None | Some(StatsRequest::None) => Ok(None),
            Some(StatsRequest::Empirical) => self.take(grads).map(Some),
            Some(StatsRequest::Sampled) => {
                self.take(&sampled_gradients(logits, seed, 0)?).map(Some)
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
    }

    /// The optimizer's view of `varmap`: the layers this `Curvature` made, in creation order,
    /// and every other variable of `varmap` (BatchNorm scales, embeddings) as a plain
    /// parameter, by name.
    pub fn param_set(&self, varmap: &VarMap) -> ParamSet {
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
        let mut others: Vec<NamedVar> = varmap
            .data()
            .lock()
            .expect("varmap poisoned")
            .iter()
            .filter(|(_, v)| !taken.contains(&v.as_tensor().id()))
            .map(|(name, var)| NamedVar {
                name: name.clone(),
                var: var.clone(),
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        ParamSet { layers, others }
    }
}
