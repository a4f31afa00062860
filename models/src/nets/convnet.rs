use candle_core::{Result, Tensor};

use crate::builder::Builder;
use crate::layers::{Conv2d, Linear};
use crate::module::{Ctx, Module};
use crate::ops::relu;

use super::global_avg_pool;

/// A small convolutional network without BatchNorm: two 3x3 convolutions with ReLU (the
/// second with stride 2), global average pooling and a Linear classifier. Without BatchNorm's
/// per-shard batch statistics, a data-parallel run trains exactly the model one process
/// trains, which makes it the convolutional case of the MPI equivalence tests; it also
/// trains in seconds.
pub struct ConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
}

impl ConvNet {
    /// On `c_in`-channel input (any height and width), 16 then 32 channels, `classes` outputs.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn new(b: &mut Builder, c_in: usize, classes: usize) -> Result<Self> {
        Ok(ConvNet {
            conv1: b.conv("conv1", c_in, 16, 3, 1, 1, true)?,
            conv2: b.conv("conv2", 16, 32, 3, 2, 1, true)?,
            fc: b.linear("fc", 32, classes, true)?,
        })
    }
}

impl Module for ConvNet {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = relu(&self.conv1.forward(x, ctx)?)?;
        let h = relu(&self.conv2.forward(&h, ctx)?)?;
        self.fc.forward(&global_avg_pool(&h)?, ctx)
    }
}
