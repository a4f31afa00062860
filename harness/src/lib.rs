//! The `skfac` harness as a library: data sets, the training loop, checkpoints, the results
//! store and sweeps, thread set-up. `main.rs` is only the command line on top.

pub mod alloc;
pub mod bench_gains;
pub mod bench_step;
pub mod checkpoint;
pub mod comm;
pub mod data;
pub mod meta;
pub mod regress;
pub mod store;
pub mod sweep;
pub mod threads;
pub mod train;
