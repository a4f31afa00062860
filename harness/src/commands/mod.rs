//! The body of each `skfac` command, with its arguments; `main.rs` only dispatches.

pub mod bench;
pub mod data;
pub mod report;
pub mod sweep;
pub mod train;
