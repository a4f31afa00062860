use candle_core::{Result, Tensor};

use super::{global_avg_pool, BasicBlock};
use crate::builder::Builder;
use crate::layers::{BatchNorm, Conv2d, Linear};
use crate::network::{Ctx, Module};

/// The CIFAR ResNets of He et al. 2016 §4.2: depth 6n+2, three stages of n basic blocks with
/// 16, 32 and 64 channels, option-A shortcuts. n = 1 is ResNet-8, n = 3 ResNet-20.
pub struct CifarResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl CifarResNet {
    pub fn new(b: &mut Builder, c_in: usize, n: usize, classes: usize) -> Result<Self> {
        let stem = b.conv("stem.conv", c_in, 16, 3, 1, 1, false)?;
        let stem_bn = b.batchnorm("stem.bn", 16)?;
        let mut blocks = Vec::new();
        let mut c = 16;
        for (stage, width) in [16, 32, 64].into_iter().enumerate() {
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    b,
                    &format!("layer{}.{i}", stage + 1),
                    c,
                    width,
                    stride,
                    true,
                )?);
                c = width;
            }
        }
        let fc = b.linear("fc", 64, classes, true)?;
        Ok(CifarResNet {
            stem,
            stem_bn,
            blocks,
            fc,
        })
    }
}

impl Module for CifarResNet {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = self
            .stem_bn
            .forward(&self.stem.forward(x, ctx)?, ctx)?
            .relu()?;
        for blk in &self.blocks {
            h = blk.forward(&h, ctx)?;
        }
        self.fc.forward(&global_avg_pool(&h)?, ctx)
    }
}
