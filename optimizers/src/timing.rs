//! Per-iteration time spent in each stage of an optimizer step.

use std::time::Instant;

use candle_core::Device;

/// Seconds per stage for one step. The forward and backward passes are timed by the caller;
/// an optimizer fills the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTimes {
    /// The forward pass (the caller's).
    pub forward: f64,
    /// The backward pass (the caller's).
    pub backward: f64,
    /// Folding curvature statistics into the factors. An optimizer includes its statistics
    /// exchange here; a caller may move it to `communication` ([`crate::Traffic`]).
    pub statistics: f64,
    /// Refreshing the factors' inverses.
    pub inverse: f64,
    /// Preconditioning the gradients and computing the KL-clip factor.
    pub precondition: f64,
    /// Collective calls, filled in by the caller (an optimizer leaves it at 0).
    pub communication: f64,
    /// Applying the update to the parameters.
    pub update: f64,
}

impl StageTimes {
    /// The stages' names, in the order of [`StageTimes::values`]: the one spelling that the
    /// results store's columns, reports and printed tables use.
    pub const NAMES: [&'static str; 7] = [
        "forward",
        "backward",
        "statistics",
        "inverse",
        "precondition",
        "communication",
        "update",
    ];

    /// The stages' seconds, in the order of [`StageTimes::NAMES`].
    pub fn values(&self) -> [f64; 7] {
        [
            self.forward,
            self.backward,
            self.statistics,
            self.inverse,
            self.precondition,
            self.communication,
            self.update,
        ]
    }

    /// The inverse of [`StageTimes::values`].
    pub fn from_values(v: [f64; 7]) -> StageTimes {
        let [forward, backward, statistics, inverse, precondition, communication, update] = v;
        StageTimes {
            forward,
            backward,
            statistics,
            inverse,
            precondition,
            communication,
            update,
        }
    }

    /// The sum over the stages.
    pub fn total(&self) -> f64 {
        self.values().iter().sum()
    }

    /// Adds `o`'s seconds stage by stage.
    pub fn add(&mut self, o: &StageTimes) {
        let (a, b) = (self.values(), o.values());
        *self = StageTimes::from_values(std::array::from_fn(|i| a[i] + b[i]));
    }

    /// Every stage multiplied by `k` (`1/steps` for a per-step mean).
    pub fn scaled(&self, k: f64) -> StageTimes {
        StageTimes::from_values(self.values().map(|x| x * k))
    }

    /// `forward 1.23 ms, backward ...` for the stages that took any time (all with `all`), and
    /// the total.
    pub fn describe(&self, all: bool) -> String {
        let parts: Vec<String> = Self::NAMES
            .iter()
            .zip(self.values())
            .filter(|(_, v)| all || *v > 0.0)
            .map(|(n, v)| format!("{n} {:.2} ms", v * 1e3))
            .collect();
        format!("{} (step {:.2} ms)", parts.join(", "), self.total() * 1e3)
    }
}

/// A monotonic lap timer that bills each lap to the stage that did the work. Candle's CPU
/// backend is eager, so a stage's work is done when its call returns; a CUDA device runs
/// queued kernels asynchronously, so every lap first waits for the device: the seconds are the
/// device's work, not the time it took to launch it.
pub struct Stopwatch {
    last: Instant,
    device: Device,
}

impl Stopwatch {
    /// A stopwatch for work on `device` whose first lap starts now (after the device's queued
    /// work).
    pub fn start(device: &Device) -> Self {
        let device = device.clone();
        sync(&device);
        Stopwatch {
            last: Instant::now(),
            device,
        }
    }

    /// Seconds since the start or the previous lap, once the device's queued work is done.
    pub fn lap(&mut self) -> f64 {
        sync(&self.device);
        let now = Instant::now();
        let s = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        s
    }
}

/// Waits for `device`'s queued work (nothing on the CPU). A failure here is the failure of a
/// queued kernel, which the next operation on the device reports, so it is not reported twice.
fn sync(device: &Device) {
    if !device.is_cpu() {
        let _ = device.synchronize();
    }
}
