//! Whether a run was timed on a busy or slowed machine. The 1-minute load average counts the
//! threads running or waiting for a CPU; above the machine's logical CPUs some of them waited,
//! so a run measured then was slowed by whatever else ran, and its wall-clock times are not
//! comparable with those of runs timed on a quiet machine. On a shared virtual machine the
//! host's other guests slow it without showing in its load average; a fixed CPU workload timed
//! before each epoch (the speed probe) sees that.

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

/// How much longer than its workload's median an epoch's speed probe may take before the
/// epoch counts as run on a slowed machine: the probe's own spread on a quiet machine is a
/// few percent.
pub const SLOW_FACTOR: f64 = 1.3;

/// The speed-probe rule in words.
pub fn slow_rule_text() -> String {
    format!("speed probe took more than {SLOW_FACTOR}× the median of the workload's epochs")
}

/// The median speed-probe seconds over every epoch of `runs` that recorded one: the machine's
/// usual speed, against which an epoch's probe shows a slowed machine.
pub fn probe_reference<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Option<f64> {
    let mut v: Vec<f64> = runs
        .into_iter()
        .flat_map(|r| r.epochs.iter().filter_map(|e| e.probe_seconds))
        .filter(|p| p.is_finite() && *p > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// `e`'s probe over `reference` when it is above [`SLOW_FACTOR`]: the epoch ran on a slowed
/// machine, this many times slower.
pub fn slowdown(e: &EpochPoint, reference: Option<f64>) -> Option<f64> {
    let ratio = e.probe_seconds? / reference.filter(|r| *r > 0.0)?;
    (ratio > SLOW_FACTOR).then_some(ratio)
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
    /// Epochs whose speed probe flagged a slowed machine, and the largest slowdown among them.
    pub slowed_epochs: usize,
    pub max_slowdown: Option<f64>,
    /// The highest epoch mean load average, and the cores of the machine it was read on.
    pub max_load_average: Option<f64>,
    pub cores: Option<usize>,
    share_sum: f64,
    share_epochs: usize,
}

impl MachineLoad {
    /// The load over `epochs`, some of `run`'s, their probes read against `reference`
    /// ([`probe_reference`]).
    pub fn of(run: &RunResult, epochs: &[EpochPoint], reference: Option<f64>) -> MachineLoad {
        let mut m = MachineLoad::default();
        m.add(run, epochs, reference);
        m
    }

    /// Adds `epochs`, some of `run`'s, their probes read against `reference`.
    pub fn add(&mut self, run: &RunResult, epochs: &[EpochPoint], reference: Option<f64>) {
        for e in epochs {
            if let Some(x) = slowdown(e, reference) {
                self.slowed_epochs += 1;
                self.max_slowdown = Some(self.max_slowdown.map_or(x, |m| m.max(x)));
            }
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

    /// Whether the times read from these epochs are not comparable: a busy machine, or a
    /// slowed one.
    pub fn flagged(&self) -> bool {
        self.busy || self.slowed_epochs > 0
    }

    /// `load average 3.9 on 2 cores; 2 epochs slowed (speed probe up to 1.62× the median)`, or
    /// `None` without load or probe data.
    pub fn describe(&self) -> Option<String> {
        let load = self.max_load_average.map(|load| match self.cores {
            Some(c) => format!("load average {load:.1} on {c} core{}", plural(c)),
            None => format!("load average {load:.1}"),
        });
        let slowed = self.max_slowdown.map(|x| {
            let n = self.slowed_epochs;
            format!(
                "{n} epoch{} slowed (speed probe up to {x:.2}× the median)",
                plural(n)
            )
        });
        match (load, slowed) {
            (Some(l), Some(s)) => Some(format!("{l}; {s}")),
            (l, s) => l.or(s),
        }
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

    fn run(probes: &[Option<f64>]) -> RunResult {
        RunResult {
            model: "resnet8".into(),
            dataset: "cifar10".into(),
            optimizer: kinds::OptimizerKind::Sgd,
            samples: None,
            seed: 0,
            status: "finished".into(),
            git_commit: String::new(),
            cpu_model: String::new(),
            device: "cpu".into(),
            threads: 2,
            cores: Some(2),
            processes: 1,
            comm_strategy: "none".into(),
            comm: None,
            crate_versions: String::new(),
            epochs: probes
                .iter()
                .enumerate()
                .map(|(i, &probe_seconds)| EpochPoint {
                    epoch: i + 1,
                    train_loss: 1.0,
                    train_accuracy: 0.5,
                    test_loss: 1.0,
                    test_accuracy: 0.5,
                    validation_accuracy: None,
                    wall_seconds: i as f64,
                    epoch_seconds: Some(1.0),
                    cpu_seconds: Some(2.0),
                    load_average: Some(1.0),
                    probe_seconds,
                })
                .collect(),
            stages: None,
        }
    }

    #[test]
    fn an_epoch_is_slowed_when_its_probe_exceeds_the_median_by_the_factor() {
        let a = run(&[Some(0.020), Some(0.021), None, Some(0.040)]);
        let b = run(&[Some(0.019), Some(0.020)]);
        // Median of 0.019, 0.020, 0.020, 0.021, 0.040.
        let reference = probe_reference([&a, &b]);
        assert_eq!(reference, Some(0.020));
        let m = MachineLoad::of(&a, &a.epochs, reference);
        assert_eq!(m.slowed_epochs, 1);
        assert!((m.max_slowdown.unwrap() - 2.0).abs() < 1e-12);
        assert!(m.flagged() && !m.busy);
        assert_eq!(
            m.describe().unwrap(),
            "load average 1.0 on 2 cores; 1 epoch slowed (speed probe up to 2.00× the median)"
        );
        // 1.25× is within the factor; without a reference nothing is slowed.
        let edge = EpochPoint {
            probe_seconds: Some(0.025),
            ..a.epochs[0]
        };
        assert_eq!(slowdown(&edge, Some(0.020)), None);
        assert!(!MachineLoad::of(&a, &a.epochs, None).flagged());
        assert_eq!(probe_reference([&run(&[None])]), None);
    }
}
