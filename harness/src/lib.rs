//! The `skfac` harness as a library: data sets, the training loop, thread set-up.
//! `main.rs` is only the command line on top.

pub mod alloc;
pub mod bench_step;
pub mod data;
pub mod threads;
pub mod train;
