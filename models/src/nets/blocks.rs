//! Residual blocks (He et al. 2016) on NHWC tensors.

use candle_core::{Result, Tensor};

use crate::builder::Builder;
use crate::layers::{BatchNorm, Conv2d};
use crate::module::{Ctx, Module};
use crate::ops::add_relu;

/// How a block's input reaches its output.
pub enum Shortcut {
    /// The input itself, when the block keeps its shape.
    Identity,
    /// Option A of He et al. §4.2 (their CIFAR ResNets): subsample by `stride` and zero-pad the
    /// new channels, `pad` on each side. No parameters.
    PadA {
        /// Keep every `stride`-th row and column.
        stride: usize,
        /// Zero channels added before and after the input's channels.
        pad: usize,
    },
    /// Option B: 1x1 convolution with stride, then BatchNorm.
    Projection(Conv2d, BatchNorm),
}

impl Shortcut {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match self {
            Shortcut::Identity => Ok(x.clone()),
            Shortcut::PadA { stride, pad } => {
                let (n, h, w, _) = x.dims4()?;
                // x[:, ::s, ::s, :]; for odd sizes this keeps ceil(h/s) rows, like the
                // strided 3x3 convolution on the other branch.
                let pick =
                    |len: usize| Tensor::arange_step(0u32, len as u32, *stride as u32, x.device());
                let sub = if *stride == 1 {
                    x.clone()
                } else {
                    x.index_select(&pick(h)?, 1)?.index_select(&pick(w)?, 2)?
                };
                let (_, ho, wo, _) = sub.dims4()?;
                if *pad == 0 {
                    return Ok(sub);
                }
                let z = Tensor::zeros((n, ho, wo, *pad), x.dtype(), x.device())?;
                Tensor::cat(&[&z, &sub, &z], 3)
            }
            Shortcut::Projection(conv, bn) => bn.forward(&conv.forward(x, ctx)?, ctx),
        }
    }
}

/// Two 3x3 convolutions with BatchNorm and ReLU, plus the shortcut:
/// `relu(bn2(conv2(h)) + shortcut(x))` with `h = relu(bn1(conv1(x)))`. The first convolution
/// carries the stride.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Shortcut,
}

impl BasicBlock {
    /// A block `c_in → c_out` whose first convolution has `stride`; its layers are named
    /// `{name}.conv1`, `{name}.bn1`, `{name}.conv2`, `{name}.bn2` (and
    /// `{name}.downsample.conv`/`.bn` for a projection shortcut). When the shape changes,
    /// `option_a` chooses the parameter-free shortcut ([`Shortcut::PadA`]) over the projection.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn new(
        b: &mut Builder,
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
        option_a: bool,
    ) -> Result<Self> {
        let conv1 = b.conv(&format!("{name}.conv1"), c_in, c_out, 3, stride, 1, false)?;
        let bn1 = b.batchnorm(&format!("{name}.bn1"), c_out)?;
        let conv2 = b.conv(&format!("{name}.conv2"), c_out, c_out, 3, 1, 1, false)?;
        let bn2 = b.batchnorm(&format!("{name}.bn2"), c_out)?;
        let shortcut = shortcut(b, name, c_in, c_out, stride, option_a)?;
        Ok(BasicBlock {
            conv1,
            bn1,
            conv2,
            bn2,
            shortcut,
        })
    }
}

fn shortcut(
    b: &mut Builder,
    name: &str,
    c_in: usize,
    c_out: usize,
    stride: usize,
    option_a: bool,
) -> Result<Shortcut> {
    Ok(if stride == 1 && c_in == c_out {
        Shortcut::Identity
    } else if option_a {
        Shortcut::PadA {
            stride,
            pad: (c_out - c_in) / 2,
        }
    } else {
        Shortcut::Projection(
            b.conv(
                &format!("{name}.downsample.conv"),
                c_in,
                c_out,
                1,
                stride,
                0,
                false,
            )?,
            b.batchnorm(&format!("{name}.downsample.bn"), c_out)?,
        )
    })
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = self.bn1.forward_relu(&self.conv1.forward(x, ctx)?, ctx)?;
        let h = self.bn2.forward(&self.conv2.forward(&h, ctx)?, ctx)?;
        add_relu(&h, &self.shortcut.forward(x, ctx)?)
    }
}

/// 1x1 → 3x3 (with the stride, as torchvision's ResNet v1.5) → 1x1 with 4x expansion.
pub struct Bottleneck {
    convs: [Conv2d; 3],
    bns: [BatchNorm; 3],
    shortcut: Shortcut,
}

impl Bottleneck {
    /// Output channels per unit of `width`.
    pub const EXPANSION: usize = 4;

    /// A block `c_in → width·EXPANSION` with bottleneck `width`, the 3x3 convolution carrying
    /// `stride`, and a projection shortcut when the shape changes. Its layers are named
    /// `{name}.conv1`…`conv3`, `{name}.bn1`…`bn3` and `{name}.downsample.conv`/`.bn`.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn new(
        b: &mut Builder,
        name: &str,
        c_in: usize,
        width: usize,
        stride: usize,
    ) -> Result<Self> {
        let c_out = width * Self::EXPANSION;
        let convs = [
            b.conv(&format!("{name}.conv1"), c_in, width, 1, 1, 0, false)?,
            b.conv(&format!("{name}.conv2"), width, width, 3, stride, 1, false)?,
            b.conv(&format!("{name}.conv3"), width, c_out, 1, 1, 0, false)?,
        ];
        let bns = [
            b.batchnorm(&format!("{name}.bn1"), width)?,
            b.batchnorm(&format!("{name}.bn2"), width)?,
            b.batchnorm(&format!("{name}.bn3"), c_out)?,
        ];
        let shortcut = shortcut(b, name, c_in, c_out, stride, false)?;
        Ok(Bottleneck {
            convs,
            bns,
            shortcut,
        })
    }
}

impl Module for Bottleneck {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            let s = conv.forward(&h, ctx)?;
            // The last BatchNorm's ReLU comes after the shortcut's sum.
            h = if i < 2 {
                bn.forward_relu(&s, ctx)?
            } else {
                bn.forward(&s, ctx)?
            };
        }
        add_relu(&h, &self.shortcut.forward(x, ctx)?)
    }
}
