//! The stages of a training step, as the results store's columns, the reports and printed
//! tables name them.

use crate::choice;

choice! {
    /// A stage of one training step, in the order a step runs them.
    pub enum Stage as "stage" {
        /// The forward pass.
        Forward = "forward",
        /// The backward pass.
        Backward = "backward",
        /// Folding curvature statistics into the K-FAC family's factors.
        Statistics = "statistics",
        /// Refreshing the factors' inverses.
        Inverse = "inverse",
        /// Preconditioning the gradients and computing the KL-clip factor.
        Precondition = "precondition",
        /// Collective calls of a data-parallel job.
        Communication = "communication",
        /// Applying the update to the parameters.
        Update = "update",
    }
}

impl Stage {
    /// How many stages there are.
    pub const COUNT: usize = Stage::ALL.len();

    /// Every stage's name, in [`Stage::ALL`]'s order: what the results store's columns are
    /// called.
    pub const NAMES: [&'static str; Stage::COUNT] = {
        let mut out = [""; Stage::COUNT];
        let mut i = 0;
        while i < Stage::COUNT {
            out[i] = Stage::ALL[i].name();
            i += 1;
        }
        out
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_stages_names_in_order() {
        assert_eq!(Stage::NAMES[0], "forward");
        assert_eq!(Stage::NAMES[6], "update");
        assert_eq!(Stage::parse(Stage::NAMES[3]).unwrap(), Stage::Inverse);
    }
}
