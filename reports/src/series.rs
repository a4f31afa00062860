//! Runs grouped for display: one group per (model, dataset), one series per optimizer (and
//! per sampling count for skfac-ss), seeds pooled within a series.

use kinds::OptimizerKind;

use crate::data::{RunResult, SweepResults};

/// The runs of one model on one data set.
#[derive(Debug)]
pub struct Group<'a> {
    pub model: &'a str,
    pub dataset: &'a str,
    pub series: Vec<Series<'a>>,
}

impl<'a> Group<'a> {
    /// Every run of the group.
    pub fn runs(&self) -> impl Iterator<Item = &'a RunResult> + '_ {
        self.series.iter().flat_map(|s| s.runs.iter().copied())
    }
}

/// One optimizer configuration and its runs (one per seed).
#[derive(Debug)]
pub struct Series<'a> {
    pub optimizer: OptimizerKind,
    pub samples: Option<u32>,
    pub runs: Vec<&'a RunResult>,
}

impl Series<'_> {
    /// The name the paper uses, e.g. `K-FAC`, `SKFAC-SS (s'=4)`.
    pub fn label(&self) -> String {
        row_label(self.optimizer, self.samples)
    }

    /// A file-name-safe key, e.g. `skfac-ss-4`.
    pub fn key(&self) -> String {
        match self.samples {
            Some(s) if self.optimizer.samples_matter() => format!("{}-{s}", self.optimizer),
            _ => self.optimizer.to_string(),
        }
    }
}

/// Groups the sweep's runs by (model, dataset) in order of first appearance, and within each
/// group by optimizer configuration in the paper's order.
pub fn groups(sweep: &SweepResults) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for run in &sweep.runs {
        let g = match out
            .iter()
            .position(|g| g.model == run.model && g.dataset == run.dataset)
        {
            Some(i) => &mut out[i],
            None => {
                out.push(Group {
                    model: &run.model,
                    dataset: &run.dataset,
                    series: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        let samples = run.samples.filter(|_| run.optimizer.samples_matter());
        match g
            .series
            .iter_mut()
            .find(|s| s.optimizer == run.optimizer && s.samples == samples)
        {
            Some(s) => s.runs.push(run),
            None => g.series.push(Series {
                optimizer: run.optimizer,
                samples,
                runs: vec![run],
            }),
        }
    }
    for g in &mut out {
        // The paper's order, which OptimizerKind's follows: SGD, Adam, K-FAC, SUA, SKFAC-RS,
        // SKFAC-SS by s'.
        g.series.sort_by_key(|s| (s.optimizer, s.samples));
        for s in &mut g.series {
            s.runs.sort_by_key(|r| r.seed);
        }
    }
    out
}

/// Display names of the models and data sets the harness knows.
pub fn model_name(model: &str) -> String {
    match model {
        "mlp" => "MLP".into(),
        "convnet" => "ConvNet".into(),
        "resnet8" => "ResNet-8".into(),
        "resnet20" => "ResNet-20".into(),
        "resnet34" => "ResNet-34".into(),
        "resnet50" => "ResNet-50".into(),
        "vgg11" => "VGG-11".into(),
        other => other.into(),
    }
}

pub fn dataset_name(dataset: &str) -> String {
    match dataset {
        "cifar10" => "CIFAR-10".into(),
        "fashion-mnist" => "Fashion-MNIST".into(),
        other => other.into(),
    }
}

/// A row's name in tables and legends: `SGD`, `SKFAC-SS (s'=4)`.
pub fn row_label(optimizer: OptimizerKind, samples: Option<u32>) -> String {
    let base = optimizer.title();
    match samples {
        Some(s) if optimizer.samples_matter() => format!("{base} (s'={s})"),
        _ => base.to_string(),
    }
}
