//! Per-iteration time spent in each stage of an optimizer step.

use std::time::Instant;

/// Seconds per stage for one step. The forward and backward passes are timed by the caller;
/// an optimizer fills the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTimes {
    pub forward: f64,
    pub backward: f64,
    pub statistics: f64,
    pub inverse: f64,
    pub precondition: f64,
    pub communication: f64,
    pub update: f64,
}

impl StageTimes {
    pub const NAMES: [&'static str; 7] = [
        "forward",
        "backward",
        "statistics",
        "inverse",
        "precondition",
        "communication",
        "update",
    ];

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

    pub fn total(&self) -> f64 {
        self.values().iter().sum()
    }

    pub fn add(&mut self, o: &StageTimes) {
        self.forward += o.forward;
        self.backward += o.backward;
        self.statistics += o.statistics;
        self.inverse += o.inverse;
        self.precondition += o.precondition;
        self.communication += o.communication;
        self.update += o.update;
    }

    pub fn scaled(&self, k: f64) -> StageTimes {
        let v = self.values().map(|x| x * k);
        StageTimes {
            forward: v[0],
            backward: v[1],
            statistics: v[2],
            inverse: v[3],
            precondition: v[4],
            communication: v[5],
            update: v[6],
        }
    }
}

/// A monotonic lap timer. Candle's CPU backend is eager, so a stage's work is done when its
/// call returns and a lap is billed to the stage that did the work.
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    /// Seconds since the start or the previous lap.
    pub fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let s = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        s
    }
}
