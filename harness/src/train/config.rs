//! What a training run is configured with.

use anyhow::Result;
use optimizers::curvature::WoodburyMode;
use optimizers::{Fisher, Hyper, LrSchedule, OptimizerKind};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Linear warm-up, then cosine annealing to `min_lr` (paper's CIFAR-10 protocol).
    WarmupCosine,
    /// Inverse-polynomial decay with a half-life (paper's ImageNet protocol).
    Poly,
    Constant,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainConfig {
    pub model: String,
    pub optimizer: String,
    pub dataset: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f64,
    pub min_lr: f64,
    pub half_life_epochs: f64,
    pub train_subset: Option<usize>,
    pub seed: u64,
    /// K-FAC family (algorithms.md): damping λ, refresh periods, moving-average decay, KL-clip,
    /// Fisher type, `skfac-ss` sampling count and how SKFAC applies its Woodbury inverse.
    pub damping: f64,
    pub t_cov: usize,
    pub t_inv: usize,
    pub stat_decay: f64,
    pub kl_clip: f64,
    pub fisher: Fisher,
    pub samples: usize,
    pub woodbury: WoodburyMode,
}

impl TrainConfig {
    /// Defaults for `model` and `optimizer`, on the data set that suits the model.
    pub fn new(model: &str, optimizer: &str) -> Self {
        let h = Hyper::default();
        TrainConfig {
            model: model.into(),
            optimizer: optimizer.into(),
            dataset: default_dataset(model).into(),
            epochs: 1,
            batch_size: 32,
            eval_batch_size: 500,
            lr: default_lr(optimizer),
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            schedule: ScheduleKind::WarmupCosine,
            warmup_epochs: 0.0,
            min_lr: 0.0,
            half_life_epochs: 5.0,
            train_subset: None,
            seed: 0,
            damping: h.damping,
            t_cov: h.t_cov,
            t_inv: h.t_inv,
            stat_decay: h.stat_decay,
            kl_clip: h.kl_clip,
            fisher: h.fisher,
            samples: h.samples,
            woodbury: h.woodbury,
        }
    }

    /// Rejects values no run can use, naming the flag that fixes them.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        anyhow::ensure!(
            self.eval_batch_size >= 1,
            "the evaluation batch size must be at least 1"
        );
        anyhow::ensure!(
            self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0,
            "--warmup-epochs must be a finite number >= 0 (got {})",
            self.warmup_epochs
        );
        anyhow::ensure!(
            self.half_life_epochs.is_finite() && self.half_life_epochs > 0.0,
            "--half-life-epochs must be a finite number > 0 (got {})",
            self.half_life_epochs
        );
        anyhow::ensure!(
            self.min_lr.is_finite() && self.min_lr >= 0.0,
            "the minimum learning rate must be a finite number >= 0 (got {})",
            self.min_lr
        );
        self.optimizer_kind()?;
        Ok(())
    }

    /// The optimizer's name, with the sampling count for `skfac-ss`.
    pub fn optimizer_label(&self) -> String {
        if self.optimizer == "skfac-ss" {
            format!("skfac-ss (s'={})", self.samples)
        } else {
            self.optimizer.clone()
        }
    }

    pub fn optimizer_kind(&self) -> Result<OptimizerKind> {
        Ok(OptimizerKind::parse(&self.optimizer)?)
    }

    pub fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            damping: self.damping,
            t_cov: self.t_cov,
            t_inv: self.t_inv,
            stat_decay: self.stat_decay,
            kl_clip: self.kl_clip,
            fisher: self.fisher,
            samples: self.samples,
            woodbury: self.woodbury,
            seed: self.seed,
            ..Hyper::default()
        }
    }

    /// The schedule in steps, given the steps per epoch.
    pub fn schedule(&self, steps_per_epoch: usize) -> LrSchedule {
        let per = steps_per_epoch as f64;
        match self.schedule {
            ScheduleKind::Constant => LrSchedule::Constant { lr: self.lr },
            ScheduleKind::WarmupCosine => LrSchedule::WarmupCosine {
                lr: self.lr,
                warmup: (self.warmup_epochs * per).round() as usize,
                total: self.epochs * steps_per_epoch,
                min_lr: self.min_lr,
            },
            ScheduleKind::Poly => LrSchedule::PolyHalfLife {
                lr: self.lr,
                half_life: self.half_life_epochs * per,
                power: 1.0,
            },
        }
    }
}

/// MLPs run on Fashion-MNIST, convolutional networks on CIFAR-10.
pub fn default_dataset(model: &str) -> &'static str {
    if model == "mlp" {
        "fashion-mnist"
    } else {
        "cifar10"
    }
}

/// A learning rate that trains well for short runs at batch 32.
pub fn default_lr(optimizer: &str) -> f64 {
    match optimizer {
        "adam" => 1e-3,
        _ => 0.05,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_values_are_rejected_naming_the_flag() {
        let ok = TrainConfig::new("resnet8", "sgd");
        ok.validate().unwrap();
        type Break = fn(&mut TrainConfig);
        let cases: [(Break, &str); 5] = [
            (|c| c.batch_size = 0, "--batch-size"),
            (|c| c.epochs = 0, "--epochs"),
            (|c| c.warmup_epochs = -1.0, "--warmup-epochs"),
            (|c| c.half_life_epochs = f64::NAN, "--half-life-epochs"),
            (|c| c.optimizer = "sdg".into(), "valid choices"),
        ];
        for (break_it, flag) in cases {
            let mut c = ok.clone();
            break_it(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}
