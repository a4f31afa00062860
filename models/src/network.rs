//! A network: its structure (a [`Module`]) plus the registry of its parameters, with the calls
//! the training loop and the optimizers need.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor};
use optimizers::{LayerStats, NamedVar, ParamSet};

use crate::builder::{Builder, Registry};
use crate::module::{Ctx, Module};
use crate::nets;

/// The models [`build`] makes, by name:
///
/// - `mlp`: ReLU MLP with hidden widths 512 and 256 on the flattened input ([`nets::Mlp`]);
/// - `resnet8`, `resnet20`: the CIFAR ResNets of He et al., option-A shortcuts
///   ([`nets::ResNet::cifar`]);
/// - `resnet34`: ResNet-34 with a CIFAR stem ([`nets::ResNet::resnet34_cifar`]);
/// - `vgg11`: VGG-11 with BatchNorm, CIFAR variant; height and width multiples of 32
///   ([`nets::Vgg::vgg11`]);
/// - `resnet50`: ResNet-50 in its ImageNet shape ([`nets::ResNet::resnet50`]).
pub const MODEL_NAMES: [&str; 7] = [
    "mlp", "convnet", "resnet8", "resnet20", "resnet34", "vgg11", "resnet50",
];

/// Why [`build`] could not make a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The name is not one of [`MODEL_NAMES`].
    #[error("unknown model `{0}`; valid choices: {valid}", valid = MODEL_NAMES.join(", "))]
    Unknown(String),
    /// The model cannot take inputs of the configured shape.
    #[error("model `{model}` needs {need}, but the data is {h}x{w}x{c}")]
    BadInput {
        /// The model's name.
        model: String,
        /// What the model needs, in words.
        need: &'static str,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Input channels.
        c: usize,
    },
    /// A parameter could not be created on the device.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Input and output shape of a model, and the seed of its initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Input height, width and channels (NHWC).
    pub input: (usize, usize, usize),
    /// Number of classes: the width of the logits.
    pub classes: usize,
    /// Seed of the parameters' random initialisation: equal seeds give equal networks.
    pub seed: u64,
}

/// A built network: its structure plus the registry of its parameters, preconditioned layers
/// (with their capture slots) and buffers.
pub struct Network {
    name: String,
    body: Box<dyn Module>,
    registry: Registry,
}

/// Builds the model `name` (one of [`MODEL_NAMES`]) in f32 on `device`, its parameters drawn
/// from a stream seeded by `cfg.seed`.
///
/// On the CPU the networks run this crate's kernels ([`crate::ops`]); on a CUDA device the
/// same ops composed from candle's own.
///
/// # Errors
///
/// [`ModelError::Unknown`] for a name not in [`MODEL_NAMES`], [`ModelError::BadInput`] for
/// `vgg11` on inputs whose height or width is not a multiple of 32, and
/// [`ModelError::Candle`] when a parameter cannot be created on `device`. Other mismatches
/// between `cfg.input` and the model only show in [`Network::forward`].
pub fn build(
    name: &str,
    cfg: &ModelConfig,
    device: &Device,
) -> std::result::Result<Network, ModelError> {
    build_with_dtype(name, cfg, device, DType::F32)
}

/// [`build`] with parameters of type `dtype`: f64 networks are the oracle tests' (their
/// round-off is too small to move a ReLU's input across zero between two computations).
///
/// # Errors
///
/// As [`build`].
pub fn build_with_dtype(
    name: &str,
    cfg: &ModelConfig,
    device: &Device,
    dtype: DType,
) -> std::result::Result<Network, ModelError> {
    let mut b = Builder::with_dtype(cfg.seed, device, dtype);
    let (h, w, c) = cfg.input;
    let body: Box<dyn Module> = match name {
        "mlp" => Box::new(nets::Mlp::new(&mut b, h * w * c, &[512, 256], cfg.classes)?),
        "convnet" => Box::new(nets::ConvNet::new(&mut b, c, cfg.classes)?),
        "resnet8" | "resnet20" => {
            let blocks = if name == "resnet8" { 1 } else { 3 };
            Box::new(nets::ResNet::cifar(&mut b, c, blocks, cfg.classes)?)
        }
        "resnet34" => Box::new(nets::ResNet::resnet34_cifar(&mut b, c, cfg.classes)?),
        "resnet50" => Box::new(nets::ResNet::resnet50(&mut b, c, cfg.classes)?),
        "vgg11" => {
            if h % 32 != 0 || w % 32 != 0 {
                return Err(ModelError::BadInput {
                    model: name.into(),
                    need: "a height and width divisible by 32",
                    h,
                    w,
                    c,
                });
            }
            Box::new(nets::Vgg::vgg11(
                &mut b,
                c,
                (h / 32) * (w / 32),
                cfg.classes,
            )?)
        }
        other => return Err(ModelError::Unknown(other.to_string())),
    };
    Ok(Network {
        name: name.to_string(),
        body,
        registry: b.finish(),
    })
}

impl Network {
    /// Wraps a hand-built module, named `name`; `builder` must be the one its layers were made
    /// with, or [`Network::param_set`] and [`Network::take_stats`] describe other layers.
    pub fn from_parts(name: &str, body: Box<dyn Module>, builder: Builder) -> Self {
        Network {
            name: name.to_string(),
            body,
            registry: builder.finish(),
        }
    }

    /// The name the network was built or wrapped under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logits `[M, classes]` for an NHWC batch `[M, H, W, C]`, run as `ctx` says: training
    /// or evaluation, capturing statistics or not.
    ///
    /// # Errors
    ///
    /// When `x` does not fit the network (rank, channels, flattened size, spatial size too
    /// small for a window), has another dtype than the parameters or is not on the CPU.
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.body.forward(x, ctx)
    }

    /// The optimizer's view of the parameters: the preconditioned Linear/Conv2d layers in
    /// creation order, and every other trainable parameter (BatchNorm scales and shifts) by
    /// name. Buffers are not included.
    pub fn param_set(&self) -> ParamSet {
        self.registry.param_set()
    }

    /// The statistics captured by the last capturing forward pass, one entry per
    /// `param_set().layers` entry, given the gradients of the loss that defines `G`. Each `G`
    /// is scaled by the batch size (see the [crate-level conventions](crate#conventions)).
    /// Empties the capture slots.
    ///
    /// # Errors
    ///
    /// When a layer captured nothing since the last call (no forward pass under
    /// [`Ctx::CAPTURE`]), or a tensor operation fails.
    pub fn take_stats(&self, grads: &GradStore) -> Result<Vec<LayerStats>> {
        crate::capture::take_all(
            &self.registry.layers,
            grads,
            "run the forward pass with Ctx::CAPTURE first",
        )
    }

    /// Drops captured statistics that will not be used.
    pub fn clear_stats(&self) {
        for (_, cap) in &self.registry.layers {
            cap.clear();
        }
    }

    /// Running statistics and other non-trainable state, for checkpoints.
    pub fn buffers(&self) -> &[NamedVar] {
        &self.registry.buffers
    }

    /// Every tensor that defines the network's state: parameters then buffers.
    pub fn named_vars(&self) -> Vec<NamedVar> {
        let mut v = self.param_set().all();
        v.extend(self.registry.buffers.iter().cloned());
        v
    }
}
