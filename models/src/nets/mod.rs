//! The networks buildable by name.

mod blocks;
mod convnet;
mod mlp;
mod resnet;
mod vgg;

pub use blocks::{BasicBlock, Bottleneck, Shortcut};
pub use convnet::ConvNet;
pub use mlp::Mlp;
pub use resnet::ResNet;
pub use vgg::Vgg;

use candle_core::{Result, Tensor};

/// Global average pooling: `[N, H, W, C]` → `[N, C]`.
pub(crate) fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean((1, 2))
}
