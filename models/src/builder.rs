//! Creates a network's parameters with seeded initialisation and records them: preconditioned
//! layers (with their capture slots), other trainable parameters, and buffers (BatchNorm running
//! statistics).

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use optimizers::{ConvLayout, LayerKind, NamedVar, ParamSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::capture::{self, Capture, CapturedLayer};
use crate::layers::{BatchNorm, Conv2d, Linear};
use crate::ops::Window;

/// Everything a network owns besides its structure.
#[derive(Default)]
pub struct Registry {
    pub(crate) layers: Vec<CapturedLayer>,
    pub(crate) others: Vec<NamedVar>,
    pub(crate) buffers: Vec<NamedVar>,
}

impl Registry {
    /// The preconditioned layers in creation order, and the other trainable parameters by
    /// name, as the optimizers take them. Buffers are not included.
    pub fn param_set(&self) -> ParamSet {
        ParamSet {
            layers: self.layers.iter().map(|(s, _)| s.clone()).collect(),
            others: self.others.clone(),
        }
    }
}

/// Creates layers and their parameters from one seeded random stream, and records them in a
/// [`Registry`]. The parameters are drawn in creation order, so the same seed and the same
/// sequence of calls give the same network.
///
/// Names (`name` arguments) become the parameters' names, `{name}.weight`, `{name}.bias`, and
/// for BatchNorm `{name}.running_mean`, `{name}.running_var`.
pub struct Builder {
    rng: ChaCha8Rng,
    device: Device,
    dtype: DType,
    reg: Registry,
}

impl Builder {
    /// A builder of f32 parameters on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self::with_dtype(seed, device, DType::F32)
    }

    /// A builder of `dtype` parameters on `device`. f64 networks are for oracle tests that
    /// need tighter tolerances; the kernels take f32 and f64 only.
    pub fn with_dtype(seed: u64, device: &Device, dtype: DType) -> Self {
        Builder {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
            dtype,
            reg: Registry::default(),
        }
    }

    /// Everything created so far, for [`crate::Network::from_parts`].
    pub fn finish(self) -> Registry {
        self.reg
    }

    fn var(&mut self, shape: &[usize], sample: impl Fn(&mut ChaCha8Rng) -> f64) -> Result<Var> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| sample(&mut self.rng)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &self.device)?.to_dtype(self.dtype)?)
    }

    fn normal(&mut self, shape: &[usize], std: f64) -> Result<Var> {
        self.var(shape, |r| std * r.sample::<f64, _>(StandardNormal))
    }

    fn uniform(&mut self, shape: &[usize], bound: f64) -> Result<Var> {
        self.var(shape, |r| r.random_range(-bound..bound))
    }

    fn constant(&mut self, shape: &[usize], value: f64) -> Result<Var> {
        self.var(shape, |_| value)
    }

    /// A Linear layer `inputs → outputs`, with weight `[outputs, inputs]` and, if `bias`, a
    /// bias `[outputs]`, registered as a preconditioned layer. PyTorch's default Linear
    /// initialisation: U(±1/√in) for weight and bias.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created on the builder's device.
    pub fn linear(
        &mut self,
        name: &str,
        inputs: usize,
        outputs: usize,
        bias: bool,
    ) -> Result<Linear> {
        let bound = 1.0 / (inputs as f64).sqrt();
        let weight = self.uniform(&[outputs, inputs], bound)?;
        let bias = if bias {
            Some(self.uniform(&[outputs], bound)?)
        } else {
            None
        };
        let kind = LayerKind::Linear { inputs, outputs };
        let capture = self.register(name, kind, &weight, &bias);
        Ok(Linear::new(weight, bias, capture))
    }

    /// A `k×k` convolution `c_in → c_out` with `stride` and zero `padding` on NHWC input, with
    /// weight `[c_out, k, k, c_in]` and, if `bias`, a bias `[c_out]`, registered as a
    /// preconditioned layer. He (Kaiming) normal initialisation in fan-out mode, as
    /// torchvision's ResNets use; a bias is U(±1/√fan_in) like PyTorch's default.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created on the builder's device.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Conv2d> {
        let std = (2.0 / (c_out * k * k) as f64).sqrt();
        let weight = self.normal(&[c_out, k, k, c_in], std)?;
        let bias = if bias {
            Some(self.uniform(&[c_out], 1.0 / ((c_in * k * k) as f64).sqrt())?)
        } else {
            None
        };
        let kind = LayerKind::Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride,
            padding,
            layout: ConvLayout::ChannelsLast,
        };
        let capture = self.register(name, kind, &weight, &bias);
        let win = Window {
            kh: k,
            kw: k,
            stride,
            padding,
        };
        Ok(Conv2d::new(weight, bias, win, capture))
    }

    /// BatchNorm over `channels` channels: scale (`weight`, ones) and shift (`bias`, zeros)
    /// are registered as plain trainable parameters, the running mean and variance as buffers.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created on the builder's device.
    pub fn batchnorm(&mut self, name: &str, channels: usize) -> Result<BatchNorm> {
        let gamma = self.constant(&[channels], 1.0)?;
        let beta = self.constant(&[channels], 0.0)?;
        let mean = self.constant(&[channels], 0.0)?;
        let var = self.constant(&[channels], 1.0)?;
        for (suffix, v, list) in [
            ("weight", &gamma, 0),
            ("bias", &beta, 0),
            ("running_mean", &mean, 1),
            ("running_var", &var, 1),
        ] {
            let nv = NamedVar {
                name: format!("{name}.{suffix}"),
                var: v.clone(),
            };
            if list == 0 {
                self.reg.others.push(nv);
            } else {
                self.reg.buffers.push(nv);
            }
        }
        Ok(BatchNorm::new(gamma, beta, mean, var))
    }

    fn register(
        &mut self,
        name: &str,
        kind: LayerKind,
        weight: &Var,
        bias: &Option<Var>,
    ) -> Arc<Capture> {
        let (spec, capture) = capture::layer(name.to_string(), kind, weight, bias);
        self.reg.layers.push((spec, capture.clone()));
        capture
    }
}
