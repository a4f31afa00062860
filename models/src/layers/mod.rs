//! The layers networks are made of. Linear and Conv2d capture K-FAC statistics.

mod batchnorm;
mod conv;
mod linear;

pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use linear::Linear;
