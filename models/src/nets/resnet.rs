use candle_core::{Result, Tensor};

use super::{global_avg_pool, BasicBlock, Bottleneck};
use crate::builder::Builder;
use crate::layers::{BatchNorm, Conv2d, Linear};
use crate::network::{Ctx, Module};
use crate::ops::{max_pool2d, Window};

/// torchvision-style ResNets with projection shortcuts: ResNet-34 in its CIFAR variant
/// (3x3 stem, no max-pool) and ResNet-50 in its ImageNet shape (7x7/2 stem, 3x3/2 max-pool).
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    stem_pool: bool,
    blocks: Vec<Box<dyn Module>>,
    fc: Linear,
}

const STAGES: [usize; 4] = [3, 4, 6, 3];
const WIDTHS: [usize; 4] = [64, 128, 256, 512];

fn stride_of(stage: usize, i: usize) -> usize {
    if stage > 0 && i == 0 {
        2
    } else {
        1
    }
}

impl ResNet {
    pub fn resnet34_cifar(b: &mut Builder, c_in: usize, classes: usize) -> Result<Self> {
        let stem = b.conv("stem.conv", c_in, 64, 3, 1, 1, false)?;
        let stem_bn = b.batchnorm("stem.bn", 64)?;
        let mut blocks: Vec<Box<dyn Module>> = Vec::new();
        let mut c = 64;
        for (stage, (&n, &width)) in STAGES.iter().zip(&WIDTHS).enumerate() {
            for i in 0..n {
                let name = format!("layer{}.{i}", stage + 1);
                blocks.push(Box::new(BasicBlock::new(
                    b,
                    &name,
                    c,
                    width,
                    stride_of(stage, i),
                    false,
                )?));
                c = width;
            }
        }
        let fc = b.linear("fc", c, classes, true)?;
        Ok(ResNet {
            stem,
            stem_bn,
            stem_pool: false,
            blocks,
            fc,
        })
    }

    pub fn resnet50(b: &mut Builder, c_in: usize, classes: usize) -> Result<Self> {
        let stem = b.conv("stem.conv", c_in, 64, 7, 2, 3, false)?;
        let stem_bn = b.batchnorm("stem.bn", 64)?;
        let mut blocks: Vec<Box<dyn Module>> = Vec::new();
        let mut c = 64;
        for (stage, (&n, &width)) in STAGES.iter().zip(&WIDTHS).enumerate() {
            for i in 0..n {
                let name = format!("layer{}.{i}", stage + 1);
                blocks.push(Box::new(Bottleneck::new(
                    b,
                    &name,
                    c,
                    width,
                    stride_of(stage, i),
                )?));
                c = width * Bottleneck::EXPANSION;
            }
        }
        let fc = b.linear("fc", c, classes, true)?;
        Ok(ResNet {
            stem,
            stem_bn,
            stem_pool: true,
            blocks,
            fc,
        })
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = self
            .stem_bn
            .forward(&self.stem.forward(x, ctx)?, ctx)?
            .relu()?;
        if self.stem_pool {
            h = max_pool2d(
                &h,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    padding: 1,
                },
            )?;
        }
        for blk in &self.blocks {
            h = blk.forward(&h, ctx)?;
        }
        self.fc.forward(&global_avg_pool(&h)?, ctx)
    }
}
