//! Whether a run was timed on a busy machine. The 1-minute load average counts the threads
//! running or waiting for a CPU; above the machine's logical CPUs some of them waited, so a
//! run measured then was slowed by whatever else ran, and its wall-clock times are not
//! comparable with those of runs timed on a quiet machine.

use crate::data::{EpochPoint, RunResult};

/// How far the load average may exceed the cores before the machine counts as busy: half a
/// thread of slack for short-lived processes and the average's own lag.
pub const BUSY_MARGIN: f64 = 0.5;

/// The rule, declared once: a mean load average of `load_average` on `cores` logical CPUs
/// means more threads wanted a CPU than there were, so someone competed with the run.
pub fn is_busy(load_average: f64, cores: usize) -> bool {
    load_average > cores as f64 + BUSY_MARGIN
}

/// The rule in words, for notes that explain a mark.
pub fn rule_text() -> String {
    format!("load average above the cores + {BUSY_MARGIN}")
}

/// An epoch's share of the CPUs its process was given: CPU seconds over wall seconds ×
/// threads (about 1 when every thread computed throughout, lower when they waited).
pub fn cpu_share(e: &EpochPoint, threads: usize) -> Option<f64> {
    let (cpu, wall) = (e.cpu_seconds?, e.epoch_seconds?);
    (wall > 0.0 && threads > 0).then(|| cpu / (wall * threads as f64))
}

/// How busy the machine was over some epochs of one or more runs. Epochs without a load
/// average (older stores, machines without `/proc/loadavg`) never count as busy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineLoad {
    /// Whether any of the epochs was timed on a busy machine.
    pub busy: bool,
    /// The highest epoch mean load average, and the cores of the machine it was read on.
    pub max_load_average: Option<f64>,
    pub cores: Option<usize>,
    share_sum: f64,
    share_epochs: usize,
}

impl MachineLoad {
    /// The load over `epochs`, some of `run`'s.
    pub fn of(run: &RunResult, epochs: &[EpochPoint]) -> MachineLoad {
        let mut m = MachineLoad::default();
        m.add(run, epochs);
        m
    }

    /// Adds `epochs`, some of `run`'s.
    pub fn add(&mut self, run: &RunResult, epochs: &[EpochPoint]) {
        for e in epochs {
            if let Some(load) = e.load_average {
                if run.cores.is_some_and(|c| is_busy(load, c)) {
                    self.busy = true;
                }
                if self.max_load_average.is_none_or(|m| load > m) {
                    self.max_load_average = Some(load);
                    self.cores = run.cores;
                }
            }
            if let Some(s) = cpu_share(e, run.threads) {
                self.share_sum += s;
                self.share_epochs += 1;
            }
        }
    }

    /// The mean [`cpu_share`] over the epochs that recorded one.
    pub fn cpu_share(&self) -> Option<f64> {
        (self.share_epochs > 0).then(|| self.share_sum / self.share_epochs as f64)
    }

    /// `load average 3.9 on 2 cores`, or `None` without load data.
    pub fn describe(&self) -> Option<String> {
        let load = self.max_load_average?;
        Some(match self.cores {
            Some(c) => format!("load average {load:.1} on {c} core{}", plural(c)),
            None => format!("load average {load:.1}"),
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_means_more_than_half_a_thread_above_the_cores() {
        assert!(!is_busy(2.5, 2));
        assert!(is_busy(2.51, 2));
        assert!(!is_busy(15.0, 16));
        assert!(is_busy(3.9, 2));
    }
}
