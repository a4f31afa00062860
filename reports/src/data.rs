//! The values a report is made from, as loaded from the results store.

use kinds::{OptimizerKind, Stage};

/// The stages of a training step, in the order the store and the paper's Fig. 3 list them.
pub const STAGES: [&str; Stage::COUNT] = Stage::NAMES;

/// A sweep and all of its runs.
#[derive(Clone, Debug)]
pub struct SweepResults {
    pub name: String,
    /// Test accuracy (a fraction) the time-to-target table measures against.
    pub target: Option<f64>,
    pub runs: Vec<RunResult>,
    /// The trials of the sweep's search, in the file's order; empty when it had none.
    pub search: Vec<SearchTrial>,
}

/// One setting a sweep's search tried for one row (model, optimizer, s').
#[derive(Clone, Debug, PartialEq)]
pub struct SearchTrial {
    pub model: String,
    pub optimizer: OptimizerKind,
    pub samples: Option<u32>,
    /// `lr 0.05, damping 0.3`.
    pub setting: String,
    /// `finished`, `diverged`, `failed`, `running`, or `not run`.
    pub status: String,
    /// At the end of the trial's budget, when it finished.
    pub validation_accuracy: Option<f64>,
    /// The setting the row's timed runs took.
    pub picked: bool,
}

/// One run: what made it, how it ended, its epochs and its mean stage times.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub model: String,
    pub dataset: String,
    pub optimizer: OptimizerKind,
    /// skfac-ss's s'.
    pub samples: Option<u32>,
    pub seed: u64,
    /// `finished`, `diverged`, `failed` or `running`.
    pub status: String,
    pub git_commit: String,
    pub cpu_model: String,
    /// `cpu`, or `cuda:N (GPU name)`.
    pub device: String,
    pub threads: usize,
    /// Logical CPUs of the machine that trained it; `None` in stores from before it was
    /// recorded.
    pub cores: Option<usize>,
    pub processes: usize,
    /// What a data-parallel run exchanged besides gradients (`none` alone).
    pub comm_strategy: String,
    /// Its measured communication; `None` when no step was logged.
    pub comm: Option<CommMeans>,
    /// JSON object of crate names to versions.
    pub crate_versions: String,
    pub epochs: Vec<EpochPoint>,
    /// Mean seconds per training step, per stage; `None` when no step was logged.
    pub stages: Option<StageMeans>,
}

/// Metrics at the end of one epoch (1-based).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// On the validation split, where the run held one out.
    pub validation_accuracy: Option<f64>,
    /// Training seconds so far, evaluation excluded.
    pub wall_seconds: f64,
    /// This epoch's training seconds, the process's CPU seconds over the same span, and the
    /// machine's mean 1-minute load average while it trained; `None` where not recorded.
    pub epoch_seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub load_average: Option<f64>,
    /// Seconds the speed probe (a fixed CPU workload) took before the epoch: longer than
    /// usual, the machine was slowed ([`crate::busy::slowdown`]). `None` where not recorded.
    pub probe_seconds: Option<f64>,
}

/// A data-parallel run's communication, per process: the gradient all-reduce per step, the
/// statistics exchange per step that had one, and the sharing of inverses per refresh that
/// had one (K-FAC and SUA with their inverses spread over the processes).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommMeans {
    /// Seconds in the calls, of which `*_wait_seconds` waiting for the slowest process.
    pub gradient_seconds: f64,
    pub gradient_wait_seconds: f64,
    pub gradient_bytes: f64,
    pub statistics_seconds: f64,
    pub statistics_wait_seconds: f64,
    pub statistics_bytes: f64,
    /// Steps that exchanged statistics.
    pub statistics_steps: usize,
    pub inverse_seconds: f64,
    pub inverse_wait_seconds: f64,
    pub inverse_bytes: f64,
    /// Refreshes that shared inverses.
    pub inverse_steps: usize,
}

/// Mean seconds per step of each stage in [`STAGES`], over `steps` logged steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageMeans {
    pub seconds: [f64; 7],
    pub steps: usize,
}

impl StageMeans {
    pub fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }
}
