//! A network: its structure (a [`Module`]) plus the registry of its parameters, with the calls
//! the training loop and the optimizers need.

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor};
use optimizers::{LayerStats, NamedVar, ParamSet};

use crate::builder::{Builder, Registry};
use crate::module::{Ctx, Module};
use crate::nets;

/// The models buildable by name.
pub const MODEL_NAMES: [&str; 6] = [
    "mlp", "resnet8", "resnet20", "resnet34", "vgg11", "resnet50",
];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{0}`; valid choices: {valid}", valid = MODEL_NAMES.join(", "))]
    Unknown(String),
    #[error("model `{model}` needs {need}, but the data is {h}x{w}x{c}")]
    BadInput {
        model: String,
        need: &'static str,
        h: usize,
        w: usize,
        c: usize,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Input and output shape of a model, and the seed of its initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Input height, width and channels (NHWC).
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub seed: u64,
}

pub struct Network {
    name: String,
    body: Box<dyn Module>,
    registry: Registry,
}

/// Builds the model `name` (one of [`MODEL_NAMES`]) in f32 on `device`.
pub fn build(
    name: &str,
    cfg: &ModelConfig,
    device: &Device,
) -> std::result::Result<Network, ModelError> {
    let mut b = Builder::new(cfg.seed, device);
    let (h, w, c) = cfg.input;
    let body: Box<dyn Module> = match name {
        "mlp" => Box::new(nets::Mlp::new(&mut b, h * w * c, &[512, 256], cfg.classes)?),
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
    /// Wraps a hand-built module; `builder` must be the one its layers were made with.
    pub fn from_parts(name: &str, body: Box<dyn Module>, builder: Builder) -> Self {
        Network {
            name: name.to_string(),
            body,
            registry: builder.finish(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logits `[M, classes]` for an NHWC batch.
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.body.forward(x, ctx)
    }

    pub fn param_set(&self) -> ParamSet {
        self.registry.param_set()
    }

    /// The statistics captured by the last capturing forward pass, one entry per
    /// `param_set().layers` entry, given the gradients of the loss that defines `G`.
    pub fn take_stats(&self, grads: &GradStore) -> Result<Vec<LayerStats>> {
        let mut out = Vec::with_capacity(self.registry.layers.len());
        for (spec, cap) in &self.registry.layers {
            match cap.take(grads, spec.bias.is_some())? {
                Some(s) => out.push(s),
                None => candle_core::bail!(
                    "layer {} captured nothing: run the forward pass with Ctx::CAPTURE first",
                    spec.name
                ),
            }
        }
        Ok(out)
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
