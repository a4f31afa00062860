//! CPU kernels as candle custom ops, for NHWC tensors: the im2col/col2im pair behind Conv2d,
//! the product with a transposed weight, max pooling, batch norm and ReLU. Each has a
//! hand-written backward. On other devices (and on the CPU under [`composed_ops`]) the same ops
//! run composed from candle's own.

mod batchnorm;
mod composed;
mod conv;
mod cpu;
mod gemm_isa;
mod geometry;
mod im2col;
mod matmul_t;
mod maxpool;
mod op_times;
mod relu;
mod shifted;
mod valid_taps;

pub use batchnorm::{batch_norm, batch_norm_relu, Moments};
pub use conv::{conv2d_tiled, conv2d_valid_taps, tiling_pays, valid_taps_pay};
pub use gemm_isa::{gemm_isa, GemmIsa};
pub use geometry::Window;
pub use im2col::{col2im, im2col};
pub use matmul_t::matmul_t;
pub use maxpool::max_pool2d;
pub use op_times::{record_op_times, take_op_times, OpTime};
pub(crate) use optimizers::kernels::native;
pub use optimizers::kernels::{composed_ops, ComposedOps};
pub use relu::{add_relu, relu};
