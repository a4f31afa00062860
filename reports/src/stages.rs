//! Stage-time shares (the paper's Fig. 3): mean seconds per training step in each stage.

use crate::data::STAGES;
use crate::series::Group;

/// One optimizer configuration's mean per-step seconds per stage, averaged over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRow {
    pub label: String,
    pub key: String,
    pub seconds: [f64; 7],
    /// Steps the means are over, summed across runs.
    pub steps: usize,
}

impl StageRow {
    pub fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }

    /// Each stage's share of the step, as a fraction.
    pub fn shares(&self) -> [f64; 7] {
        let t = self.total();
        let mut out = [0.0; 7];
        if t > 0.0 {
            for (o, s) in out.iter_mut().zip(self.seconds) {
                *o = s / t;
            }
        }
        out
    }
}

/// Rows for the series of `group` that logged any steps. Runs are weighted by their step
/// counts, so the mean is over every logged step of the series.
pub fn stage_rows(group: &Group) -> Vec<StageRow> {
    group
        .series
        .iter()
        .filter_map(|s| {
            let mut sum = [0.0; STAGES.len()];
            let mut steps = 0;
            for m in s.runs.iter().filter_map(|r| r.stages) {
                for (acc, v) in sum.iter_mut().zip(m.seconds) {
                    *acc += v * m.steps as f64;
                }
                steps += m.steps;
            }
            (steps > 0).then(|| StageRow {
                label: s.label(),
                key: s.key(),
                seconds: sum.map(|v| v / steps as f64),
                steps,
            })
        })
        .collect()
}
