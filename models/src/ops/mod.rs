//! CPU kernels as candle custom ops, for NHWC tensors: the im2col/col2im pair behind Conv2d and
//! max pooling. Each has a hand-written backward.

mod batchnorm;
mod cpu;
mod geometry;
mod im2col;
mod maxpool;

pub use batchnorm::{batch_norm_train, BatchStats};
pub use geometry::Window;
pub use im2col::{col2im, im2col};
pub use maxpool::max_pool2d;
