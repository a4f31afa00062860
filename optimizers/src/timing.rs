//! Time spent in an optimizer's own stages of a step, for callers that ask for it
//! ([`crate::Optimizer::set_timing`]).

use std::time::Instant;

use candle_core::Device;
use kinds::Stage;

/// Seconds in each of the optimizer's own stages of one step; all zero unless timing is on
/// ([`crate::Optimizer::set_timing`]). The forward and backward passes, and a data-parallel
/// job's gradient exchange, are the training loop's to time.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTimes {
    /// Folding curvature statistics into the factors, their exchange between processes
    /// included ([`crate::Traffic`] says how long that took).
    pub statistics: f64,
    /// Refreshing the factors' inverses (sharing them included).
    pub inverse: f64,
    /// Preconditioning the gradients and computing the KL-clip factor.
    pub precondition: f64,
    /// Applying the update to the parameters.
    pub update: f64,
}

impl StageTimes {
    /// The stages these are, in the order of [`StageTimes::values`].
    pub const STAGES: [Stage; 4] = [
        Stage::Statistics,
        Stage::Inverse,
        Stage::Precondition,
        Stage::Update,
    ];

    /// The stages' seconds, in the order of [`StageTimes::STAGES`].
    pub fn values(&self) -> [f64; 4] {
        [
            self.statistics,
            self.inverse,
            self.precondition,
            self.update,
        ]
    }

    /// The sum over the stages.
    pub fn total(&self) -> f64 {
        self.values().iter().sum()
    }
}

/// A monotonic lap timer that bills each lap to the stage that did the work. Candle's CPU
/// backend is eager, so a stage's work is done when its call returns; a CUDA device runs
/// queued kernels asynchronously, so every lap first waits for the device: the seconds are the
/// device's work, not the time it took to launch it. A stopwatch that is off neither waits nor
/// reads the clock, and every lap is 0.
pub struct Stopwatch {
    /// The previous lap's end, or `None` when off.
    last: Option<Instant>,
    device: Device,
}

impl Stopwatch {
    /// A stopwatch for work on `device` whose first lap starts now (after the device's queued
    /// work).
    pub fn start(device: &Device) -> Self {
        Self::start_if(true, device)
    }

    /// [`Stopwatch::start`] when `on`, else a stopwatch whose laps are 0.
    pub fn start_if(on: bool, device: &Device) -> Self {
        let device = device.clone();
        let last = on.then(|| {
            sync(&device);
            Instant::now()
        });
        Stopwatch { last, device }
    }

    /// Seconds since the start or the previous lap, once the device's queued work is done (0
    /// when off).
    pub fn lap(&mut self) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        sync(&self.device);
        let now = Instant::now();
        self.last = Some(now);
        now.duration_since(last).as_secs_f64()
    }
}

/// Waits for `device`'s queued work (nothing on the CPU). A failure here is the failure of a
/// queued kernel, which the next operation on the device reports, so it is not reported twice.
fn sync(device: &Device) {
    if !device.is_cpu() {
        let _ = device.synchronize();
    }
}
