//! What a training run is configured with: the model, the data, the optimizer kind and its
//! [`Hyper`]-parameters, and the loop's own settings ([`LoopSettings`]).

use anyhow::Result;
use optimizers::{Hyper, OptimizerKind};

use super::LoopSettings;
use crate::data::DATASET_NAMES;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainConfig {
    pub model: String,
    pub optimizer: OptimizerKind,
    pub dataset: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub train_subset: Option<usize>,
    /// Training images held out as a validation split ([`crate::data::validation`]) and
    /// evaluated after each epoch; 0 for none. `train_subset` counts the images left.
    pub validation: usize,
    /// The optimizer's hyper-parameters and the run's seed.
    pub hyper: Hyper,
    /// The learning-rate schedule and the loss's label smoothing.
    pub loop_settings: LoopSettings,
}

impl TrainConfig {
    /// Defaults for `model` and `optimizer`, on the data set that suits the model.
    pub fn new(model: &str, optimizer: OptimizerKind) -> Self {
        TrainConfig {
            model: model.into(),
            optimizer,
            dataset: default_dataset(model).into(),
            epochs: 1,
            batch_size: 32,
            eval_batch_size: 500,
            train_subset: None,
            validation: 0,
            hyper: Hyper::for_kind(optimizer),
            loop_settings: LoopSettings::default(),
        }
    }

    /// Rejects values no run can use, naming the setting that fixes them.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            models::MODEL_NAMES.contains(&self.model.as_str()),
            "unknown --model `{}`; valid choices: {}",
            self.model,
            models::MODEL_NAMES.join(", ")
        );
        anyhow::ensure!(
            DATASET_NAMES.contains(&self.dataset.as_str()),
            "unknown --dataset `{}`; valid choices: {}",
            self.dataset,
            DATASET_NAMES.join(", ")
        );
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        anyhow::ensure!(
            self.eval_batch_size >= 1,
            "the evaluation batch size must be at least 1"
        );
        anyhow::ensure!(
            self.train_subset != Some(0),
            "--train-subset must be at least 1"
        );
        self.hyper.validate()?;
        self.loop_settings.validate()?;
        Ok(())
    }

    /// `skfac-ss`'s sampling count, `None` for the other optimizers.
    pub fn samples(&self) -> Option<usize> {
        self.optimizer
            .samples_matter()
            .then_some(self.hyper.samples)
    }

    /// The optimizer's name, with the sampling count for `skfac-ss`.
    pub fn optimizer_label(&self) -> String {
        self.optimizer.label(self.hyper.samples)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_values_are_rejected_naming_the_setting() {
        let ok = TrainConfig::new("resnet8", OptimizerKind::Sgd);
        ok.validate().unwrap();
        type Break = fn(&mut TrainConfig);
        let cases: [(Break, &str); 6] = [
            (|c| c.batch_size = 0, "--batch-size"),
            (|c| c.epochs = 0, "--epochs"),
            (|c| c.loop_settings.warmup_epochs = -1.0, "`warmup_epochs`"),
            (
                |c| c.loop_settings.half_life_epochs = f64::NAN,
                "`half_life_epochs`",
            ),
            (|c| c.model = "resnet9".into(), "valid choices"),
            (|c| c.dataset = "mnist".into(), "fashion-mnist"),
        ];
        for (break_it, flag) in cases {
            let mut c = ok.clone();
            break_it(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn adam_gets_its_own_learning_rate() {
        assert_eq!(TrainConfig::new("mlp", OptimizerKind::Adam).hyper.lr, 1e-3);
        assert_eq!(TrainConfig::new("mlp", OptimizerKind::Kfac).hyper.lr, 0.05);
    }
}
