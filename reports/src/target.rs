//! The time-to-target table (the paper's Table 1): epochs and training minutes until a run
//! first reaches the target test accuracy, and the time gap to K-FAC.

use kinds::OptimizerKind;

use crate::busy::{probe_reference, MachineLoad};
use crate::series::Group;

/// One row of the table: one optimizer configuration, averaged over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRow {
    pub label: String,
    pub optimizer: OptimizerKind,
    pub samples: Option<u32>,
    /// Finished or diverged runs (seeds) in the series, and how many of them reached the
    /// target. Runs still running or failed are left out.
    pub runs: usize,
    pub reached: usize,
    pub diverged: usize,
    /// Mean over the seeds that reached the target: the first epoch at or above it, and the
    /// training minutes (evaluation excluded) at the end of that epoch.
    pub epochs: Option<f64>,
    pub minutes: Option<f64>,
    /// `minutes / kfac minutes - 1`: the paper's "time gap" (+18.76% for its SGD).
    pub gap: Option<f64>,
    /// Mean test accuracy at the last epoch of the finished runs.
    pub final_accuracy: Option<f64>,
    /// Mean validation accuracy at the last epoch of the finished runs that held a split out.
    pub final_validation: Option<f64>,
    /// The machine's load and speed over the epochs the times are read from: each run's
    /// epochs up to the first at the target, or all of them when it never reached it. Busy or
    /// slowed there, the row's time is not comparable.
    pub load: MachineLoad,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The table for one group, against `target` (a fraction).
pub fn target_rows(group: &Group, target: f64) -> Vec<TargetRow> {
    let reference = probe_reference(group.runs());
    let mut rows: Vec<TargetRow> = group
        .series
        .iter()
        .map(|s| {
            let mut epochs = Vec::new();
            let mut minutes = Vec::new();
            let mut finals = Vec::new();
            let mut validations = Vec::new();
            let mut diverged = 0;
            let mut load = MachineLoad::default();
            let done = s
                .runs
                .iter()
                .filter(|r| r.status == "finished" || r.status == "diverged");
            let mut runs = 0;
            for run in done {
                runs += 1;
                let reached = run.epochs.iter().position(|e| e.test_accuracy >= target);
                if let Some(e) = reached.map(|i| &run.epochs[i]) {
                    epochs.push(e.epoch as f64);
                    minutes.push(e.wall_seconds / 60.0);
                }
                load.add(
                    run,
                    &run.epochs[..reached.map_or(run.epochs.len(), |i| i + 1)],
                    reference,
                );
                if run.status == "diverged" {
                    diverged += 1;
                } else if let Some(last) = run.epochs.last() {
                    finals.push(last.test_accuracy);
                    validations.extend(last.validation_accuracy);
                }
            }
            TargetRow {
                label: s.label(),
                optimizer: s.optimizer,
                samples: s.samples,
                runs,
                reached: epochs.len(),
                diverged,
                epochs: mean(&epochs),
                minutes: mean(&minutes),
                gap: None,
                final_accuracy: mean(&finals),
                final_validation: mean(&validations),
                load,
            }
        })
        .collect();
    let kfac = rows
        .iter()
        .find(|r| r.optimizer == OptimizerKind::Kfac)
        .and_then(|r| r.minutes);
    if let Some(k) = kfac.filter(|k| *k > 0.0) {
        for r in &mut rows {
            r.gap = r.minutes.map(|m| m / k - 1.0);
        }
    }
    rows
}
