//! Sweeps: a grid of runs from a TOML file, recorded in the results store, resumable after any
//! interruption.

pub mod processes;
mod record;
mod run;
pub mod search;
pub mod spec;

pub use run::{
    comm_strategy, disk_full, follow_sweep, lease_owner, run_sweep, SweepOptions, SweepOutcome,
};
pub use spec::{load, parse, SpecError, Sweep};
