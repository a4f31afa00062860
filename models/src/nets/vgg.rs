use candle_core::{Result, Tensor};

use crate::builder::Builder;
use crate::layers::{BatchNorm, Conv2d, Linear};
use crate::module::{Ctx, Module};
use crate::ops::{max_pool2d, Window};

enum Stage {
    Conv(Conv2d, BatchNorm),
    Pool,
}

/// VGG with BatchNorm, CIFAR variant: 3x3 convolutions (BN + ReLU), 2x2 max-pools, and one
/// Linear classifier on the flattened last feature map (1x1x512 for 32x32 input).
pub struct Vgg {
    stages: Vec<Stage>,
    fc: Linear,
}

/// Configuration "A" (11 weight layers): channel counts, 0 for a max-pool.
const VGG11: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

impl Vgg {
    /// VGG-11 ("configuration A") on `c_in`-channel input with `classes` outputs. `spatial`:
    /// positions left after the five 2x2 pools, `(H/32)·(W/32)` (1 for 32x32 input).
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn vgg11(b: &mut Builder, c_in: usize, spatial: usize, classes: usize) -> Result<Self> {
        let mut stages = Vec::new();
        let mut c = c_in;
        for (i, &width) in VGG11.iter().enumerate() {
            if width == 0 {
                stages.push(Stage::Pool);
            } else {
                let conv = b.conv(&format!("features.{i}.conv"), c, width, 3, 1, 1, false)?;
                let bn = b.batchnorm(&format!("features.{i}.bn"), width)?;
                stages.push(Stage::Conv(conv, bn));
                c = width;
            }
        }
        let fc = b.linear("classifier", c * spatial, classes, true)?;
        Ok(Vgg { stages, fc })
    }
}

impl Module for Vgg {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = x.clone();
        for s in &self.stages {
            h = match s {
                Stage::Conv(conv, bn) => bn.forward_relu(&conv.forward(&h, ctx)?, ctx)?,
                Stage::Pool => max_pool2d(&h, Window::POOL_2X2)?,
            };
        }
        self.fc.forward(&h.flatten_from(1)?, ctx)
    }
}
