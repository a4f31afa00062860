//! Seconds per stage of one training step: the loop's forward and backward passes and
//! gradient exchange around the optimizer's own stages ([`optimizers::StageTimes`]).

use optimizers::Stage;
use optimizers::StageTimes;

/// Seconds per [`Stage`] for one step (or a sum or mean over steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepTimes {
    /// The forward pass.
    pub forward: f64,
    /// The backward pass.
    pub backward: f64,
    /// Folding curvature statistics into the factors (capturing them included).
    pub statistics: f64,
    /// Refreshing the factors' inverses.
    pub inverse: f64,
    /// Preconditioning the gradients and computing the KL-clip factor.
    pub precondition: f64,
    /// Collective calls of a data-parallel job.
    pub communication: f64,
    /// Applying the update to the parameters.
    pub update: f64,
}

impl StepTimes {
    /// The stages' names, in the order of [`StepTimes::values`]: the results store's columns.
    pub const NAMES: [&'static str; Stage::COUNT] = Stage::NAMES;

    /// The loop's own stages around an optimizer's.
    pub fn around(forward: f64, backward: f64, optimizer: &StageTimes) -> StepTimes {
        StepTimes {
            forward,
            backward,
            statistics: optimizer.statistics,
            inverse: optimizer.inverse,
            precondition: optimizer.precondition,
            communication: 0.0,
            update: optimizer.update,
        }
    }

    /// The stages' seconds, in the order of [`StepTimes::NAMES`].
    pub fn values(&self) -> [f64; Stage::COUNT] {
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

    /// The inverse of [`StepTimes::values`].
    pub fn from_values(v: [f64; Stage::COUNT]) -> StepTimes {
        let [forward, backward, statistics, inverse, precondition, communication, update] = v;
        StepTimes {
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
    pub fn add(&mut self, o: &StepTimes) {
        let (a, b) = (self.values(), o.values());
        *self = StepTimes::from_values(std::array::from_fn(|i| a[i] + b[i]));
    }

    /// Every stage multiplied by `k` (`1/steps` for a per-step mean).
    pub fn scaled(&self, k: f64) -> StepTimes {
        StepTimes::from_values(self.values().map(|x| x * k))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimizers_stages_land_in_their_own_columns() {
        let o = StageTimes {
            statistics: 3.0,
            inverse: 4.0,
            precondition: 5.0,
            update: 7.0,
        };
        let t = StepTimes::around(1.0, 2.0, &o);
        for (stage, v) in StageTimes::STAGES.iter().zip(o.values()) {
            let at = StepTimes::NAMES.iter().position(|n| *n == stage.name());
            assert_eq!(t.values()[at.expect("a column")], v, "{stage}");
        }
        assert_eq!(t.total(), 22.0);
        assert_eq!(StepTimes::from_values(t.values()), t);
    }
}
