use candle_core::{Result, Tensor};

use super::{global_avg_pool, BasicBlock, Bottleneck};
use crate::builder::Builder;
use crate::layers::{BatchNorm, Conv2d, Linear};
use crate::module::{Ctx, Module};
use crate::ops::{max_pool2d, Window};

/// Residual networks (He et al. 2016): a stem, stages of residual blocks (the first block of
/// every stage after the first halves the resolution), global average pooling, a classifier.
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    stem_pool: bool,
    blocks: Vec<Box<dyn Module>>,
    fc: Linear,
}

/// A block and its output channel count.
type Made = Result<(Box<dyn Module>, usize)>;

/// Makes one block: (builder, name, input channels, width, stride) → (block, output channels).
type BlockFn<'a> = dyn FnMut(&mut Builder, &str, usize, usize, usize) -> Made + 'a;

/// Stages of `(blocks, width)`, starting from `c` channels; returns the blocks and the final
/// channel count.
fn stages(
    b: &mut Builder,
    mut c: usize,
    spec: &[(usize, usize)],
    block: &mut BlockFn,
) -> Result<(Vec<Box<dyn Module>>, usize)> {
    let mut blocks = Vec::new();
    for (stage, &(n, width)) in spec.iter().enumerate() {
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let (blk, c_out) = block(b, &format!("layer{}.{i}", stage + 1), c, width, stride)?;
            blocks.push(blk);
            c = c_out;
        }
    }
    Ok((blocks, c))
}

/// The stem: a `k`x`k` convolution with `stride` to `width` channels, BatchNorm, ReLU, and
/// optionally a 3x3/2 max-pool.
struct Stem {
    width: usize,
    k: usize,
    stride: usize,
    pool: bool,
}

const CIFAR_STEM: Stem = Stem {
    width: 64,
    k: 3,
    stride: 1,
    pool: false,
};
const IMAGENET_STEM: Stem = Stem {
    width: 64,
    k: 7,
    stride: 2,
    pool: true,
};
const STAGES_34_50: [(usize, usize); 4] = [(3, 64), (4, 128), (6, 256), (3, 512)];

fn basic(option_a: bool) -> impl FnMut(&mut Builder, &str, usize, usize, usize) -> Made {
    move |b, name, c, width, stride| {
        let blk = BasicBlock::new(b, name, c, width, stride, option_a)?;
        Ok((Box::new(blk) as Box<dyn Module>, width))
    }
}

impl ResNet {
    fn assemble(
        b: &mut Builder,
        c_in: usize,
        stem: Stem,
        spec: &[(usize, usize)],
        block: &mut BlockFn,
        classes: usize,
    ) -> Result<Self> {
        let conv = b.conv(
            "stem.conv",
            c_in,
            stem.width,
            stem.k,
            stem.stride,
            stem.k / 2,
            false,
        )?;
        let bn = b.batchnorm("stem.bn", stem.width)?;
        let (blocks, c) = stages(b, stem.width, spec, block)?;
        let fc = b.linear("fc", c, classes, true)?;
        Ok(ResNet {
            stem: conv,
            stem_bn: bn,
            stem_pool: stem.pool,
            blocks,
            fc,
        })
    }

    /// The CIFAR ResNets of He et al. §4.2: depth 6n+2, three stages of n basic blocks with
    /// 16, 32 and 64 channels, option-A shortcuts. n = 1 is ResNet-8, n = 3 ResNet-20.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn cifar(b: &mut Builder, c_in: usize, n: usize, classes: usize) -> Result<Self> {
        let stem = Stem {
            width: 16,
            ..CIFAR_STEM
        };
        Self::assemble(
            b,
            c_in,
            stem,
            &[(n, 16), (n, 32), (n, 64)],
            &mut basic(true),
            classes,
        )
    }

    /// ResNet-34, CIFAR variant (3x3 stem, no max-pool), projection shortcuts.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn resnet34_cifar(b: &mut Builder, c_in: usize, classes: usize) -> Result<Self> {
        Self::assemble(
            b,
            c_in,
            CIFAR_STEM,
            &STAGES_34_50,
            &mut basic(false),
            classes,
        )
    }

    /// ResNet-50 in its ImageNet shape: 7x7/2 stem and 3x3/2 max-pool, bottleneck blocks.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn resnet50(b: &mut Builder, c_in: usize, classes: usize) -> Result<Self> {
        let mut bottleneck = |b: &mut Builder, name: &str, c, width, stride| {
            let blk = Bottleneck::new(b, name, c, width, stride)?;
            Ok((
                Box::new(blk) as Box<dyn Module>,
                width * Bottleneck::EXPANSION,
            ))
        };
        Self::assemble(
            b,
            c_in,
            IMAGENET_STEM,
            &STAGES_34_50,
            &mut bottleneck,
            classes,
        )
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = self
            .stem_bn
            .forward_relu(&self.stem.forward(x, ctx)?, ctx)?;
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
