//! Where the output-gradient rows `G` come from.

use crate::optimizer::StatsRequest;
use kinds::choice;

choice! {
    /// Which labels the statistics pass differentiates the loss on.
    pub enum Fisher as "fisher" {
        /// Labels sampled from the model's predictive distribution (true Fisher, paper eq. 3).
        Sampled = "sampled",
        /// The real labels (empirical Fisher).
        Empirical = "empirical",
    }
}

impl Fisher {
    /// What a statistics step asks the training loop to capture.
    pub fn request(self) -> StatsRequest {
        match self {
            Fisher::Sampled => StatsRequest::Sampled,
            Fisher::Empirical => StatsRequest::Empirical,
        }
    }
}
