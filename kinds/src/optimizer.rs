//! Which optimizer: the names the optimizers crate builds and the store records.

use crate::choice;

choice! {
    /// The optimizers of this workspace.
    pub enum OptimizerKind as "optimizer" {
        /// SGD with momentum, weight decay and optional Nesterov momentum.
        Sgd = "sgd",
        /// Adam, or AdamW with `decoupled_weight_decay`.
        Adam = "adam",
        /// K-FAC with dense factors (Martens & Grosse 2015; Grosse & Martens 2016 for Conv2d).
        Kfac = "kfac",
        /// K-FAC with spatially uncorrelated activations for Conv2d input factors.
        KfacSua = "kfac-sua",
        /// SKFAC with Reduce Sum: per-example means over spatial positions.
        SkfacRs = "skfac-rs",
        /// Spatial subsampling; its sampling count is the optimizers' `Hyper::samples`.
        SkfacSs = "skfac-ss",
    }
}

impl OptimizerKind {
    /// Whether this is one of the K-FAC family (uses curvature statistics).
    pub fn is_second_order(self) -> bool {
        !matches!(self, OptimizerKind::Sgd | OptimizerKind::Adam)
    }

    /// Whether a run of this optimizer is identified by its sampling count as well.
    pub fn samples_matter(self) -> bool {
        self == OptimizerKind::SkfacSs
    }

    /// The name as papers write it ("K-FAC", "SKFAC-RS").
    pub fn title(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "SGD",
            OptimizerKind::Adam => "Adam",
            OptimizerKind::Kfac => "K-FAC",
            OptimizerKind::KfacSua => "SUA",
            OptimizerKind::SkfacRs => "SKFAC-RS",
            OptimizerKind::SkfacSs => "SKFAC-SS",
        }
    }

    /// The name with the sampling count where it matters: `skfac-ss (s'=4)`.
    pub fn label(self, samples: usize) -> String {
        if self.samples_matter() {
            format!("{} (s'={samples})", self.name())
        } else {
            self.name().to_string()
        }
    }
}
