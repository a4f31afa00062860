//! The `skfac` harness as a library: data sets, the training loop, checkpoints, the results
//! store and sweeps, thread set-up, and each command's body (`commands`). `main.rs` is only
//! the command line on top.

pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod console;
pub mod data;
pub mod device;
pub mod hyper_flags;
pub mod job;
pub mod meta;
pub mod overrides;
pub mod store;
pub mod sweep;
pub mod threads;
pub mod train;
