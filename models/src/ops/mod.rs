//! CPU kernels as candle custom ops, for NHWC tensors: the im2col/col2im pair behind Conv2d,
//! max pooling, batch norm and ReLU. Each has a hand-written backward.

mod batchnorm;
mod conv;
mod cpu;
mod geometry;
mod im2col;
mod maxpool;
mod relu;

pub use batchnorm::{batch_norm_train, BatchStats};
pub use conv::{conv2d_tiled, tiling_pays};
pub use geometry::Window;
pub use im2col::{col2im, im2col};
pub use maxpool::max_pool2d;
pub use relu::{add_relu, relu};
