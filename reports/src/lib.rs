//! Reports from sweep results: convergence plots (the paper's Fig. 1-2), the time-to-target
//! table (Table 1), stage-time shares (Fig. 3), a Markdown and a self-contained HTML report
//! tying them together, a performance profile across workloads, and the ratio comparison
//! behind regression tracking.
//!
//! The crate is independent of the results store: the harness loads a [`SweepResults`] from
//! its database and hands it here, so the arithmetic and the rendering are tested on plain
//! values.

pub mod busy;
mod data;
mod document;
mod font;
mod format;
pub mod plot;
pub mod profile;
pub mod regress;
mod search;
mod series;
mod stages;
mod target;
mod write;

pub use busy::MachineLoad;
pub use data::{CommMeans, EpochPoint, RunResult, SearchTrial, StageMeans, SweepResults, STAGES};
pub use document::{Block, Document};
pub use format::hardware;
pub use series::{groups, row_label, Group, Series};
pub use stages::{stage_rows, StageRow};
pub use target::{target_rows, TargetRow};
pub use write::{write_profile, write_report, Written};

/// What can go wrong while writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("drawing {what}: {message}")]
    Plot { what: String, message: String },
    #[error("sweep `{0}` has no runs with a finished epoch yet: run the sweep first")]
    Empty(String),
}
