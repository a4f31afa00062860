//! Sweep files (`sweeps/NAME.toml`): the grid of models × optimizers × sampling counts × seeds,
//! shared and per-optimizer hyper-parameters, epochs, training subset and target accuracy.
//! Every mistake is reported before anything runs, as `FILE:LINE: what, and the valid choices`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use optimizers::curvature::WoodburyMode;
use optimizers::{Fisher, OptimizerKind};
use serde::Deserialize;
use toml::Spanned;

use crate::data::DATASET_NAMES;
use crate::train::{ScheduleKind, TrainConfig};

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct SpecError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Option<Spanned<String>>,
    dataset: Option<Spanned<String>>,
    models: Spanned<Vec<Spanned<String>>>,
    optimizers: Spanned<Vec<Spanned<String>>>,
    samples: Option<Spanned<Vec<Spanned<i64>>>>,
    seeds: Option<Spanned<Vec<Spanned<i64>>>>,
    epochs: Spanned<i64>,
    batch_size: Option<Spanned<i64>>,
    train_subset: Option<Spanned<i64>>,
    target_accuracy: Spanned<f64>,
    #[serde(default)]
    hyper: Overrides,
    #[serde(default)]
    optimizer: BTreeMap<String, Spanned<Overrides>>,
}

/// Hyper-parameters a sweep may set, for all optimizers (`[hyper]`) or one
/// (`[optimizer.NAME]`).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    lr: Option<Spanned<f64>>,
    momentum: Option<Spanned<f64>>,
    weight_decay: Option<Spanned<f64>>,
    nesterov: Option<bool>,
    schedule: Option<Spanned<String>>,
    warmup_epochs: Option<Spanned<f64>>,
    min_lr: Option<Spanned<f64>>,
    half_life_epochs: Option<Spanned<f64>>,
    damping: Option<Spanned<f64>>,
    t_cov: Option<Spanned<i64>>,
    t_inv: Option<Spanned<i64>>,
    stat_decay: Option<Spanned<f64>>,
    kl_clip: Option<Spanned<f64>>,
    fisher: Option<Spanned<String>>,
    woodbury: Option<Spanned<String>>,
}

/// One run of a sweep.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    pub cfg: TrainConfig,
    /// `skfac-ss`'s sampling count, `None` for the others.
    pub samples: Option<usize>,
}

/// A parsed, validated sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    pub target_accuracy: f64,
    pub runs: Vec<PlannedRun>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, span: &Range<usize>, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.to_path_buf(),
            line: self.line(span),
            message: message.into(),
        }
    }

    fn choice<'s>(
        &self,
        v: &'s Spanned<String>,
        field: &str,
        valid: &[&str],
    ) -> Result<&'s str, SpecError> {
        let s = v.get_ref().as_str();
        if valid.contains(&s) {
            Ok(s)
        } else {
            Err(self.err(
                &v.span(),
                format!("unknown {field} `{s}`; valid choices: {}", valid.join(", ")),
            ))
        }
    }

    fn int(&self, v: &Spanned<i64>, field: &str, min: i64) -> Result<usize, SpecError> {
        let x = *v.get_ref();
        if x >= min {
            Ok(x as usize)
        } else {
            Err(self.err(
                &v.span(),
                format!("`{field}` = {x}: must be at least {min}"),
            ))
        }
    }

    fn real(&self, v: &Spanned<f64>, field: &str, ok: bool, rule: &str) -> Result<f64, SpecError> {
        let x = *v.get_ref();
        if ok && x.is_finite() {
            Ok(x)
        } else {
            Err(self.err(&v.span(), format!("`{field}` = {x}: {rule}")))
        }
    }
}

impl Overrides {
    /// Applies the set fields to `c`, validating each.
    fn apply(&self, cx: &Ctx<'_>, c: &mut TrainConfig) -> Result<(), SpecError> {
        if let Some(v) = &self.lr {
            c.lr = cx.real(v, "lr", *v.get_ref() > 0.0, "must be > 0")?;
        }
        if let Some(v) = &self.momentum {
            let x = *v.get_ref();
            c.momentum = cx.real(v, "momentum", (0.0..1.0).contains(&x), "must be in [0, 1)")?;
        }
        if let Some(v) = &self.weight_decay {
            c.weight_decay = cx.real(v, "weight_decay", *v.get_ref() >= 0.0, "must be >= 0")?;
        }
        if let Some(n) = self.nesterov {
            c.nesterov = n;
        }
        if let Some(v) = &self.schedule {
            c.schedule = match cx.choice(v, "schedule", &["warmup-cosine", "poly", "constant"])? {
                "warmup-cosine" => ScheduleKind::WarmupCosine,
                "poly" => ScheduleKind::Poly,
                _ => ScheduleKind::Constant,
            };
        }
        if let Some(v) = &self.warmup_epochs {
            c.warmup_epochs = cx.real(v, "warmup_epochs", *v.get_ref() >= 0.0, "must be >= 0")?;
        }
        if let Some(v) = &self.min_lr {
            c.min_lr = cx.real(v, "min_lr", *v.get_ref() >= 0.0, "must be >= 0")?;
        }
        if let Some(v) = &self.half_life_epochs {
            c.half_life_epochs =
                cx.real(v, "half_life_epochs", *v.get_ref() > 0.0, "must be > 0")?;
        }
        if let Some(v) = &self.damping {
            c.damping = cx.real(v, "damping", *v.get_ref() > 0.0, "must be > 0")?;
        }
        if let Some(v) = &self.t_cov {
            c.t_cov = cx.int(v, "t_cov", 1)?;
        }
        if let Some(v) = &self.t_inv {
            c.t_inv = cx.int(v, "t_inv", 1)?;
        }
        if let Some(v) = &self.stat_decay {
            let x = *v.get_ref();
            c.stat_decay = cx.real(
                v,
                "stat_decay",
                (0.0..1.0).contains(&x),
                "must be in [0, 1)",
            )?;
        }
        if let Some(v) = &self.kl_clip {
            c.kl_clip = cx.real(
                v,
                "kl_clip",
                *v.get_ref() >= 0.0,
                "must be >= 0 (0 turns it off)",
            )?;
        }
        if let Some(v) = &self.fisher {
            c.fisher = match cx.choice(v, "fisher", &["sampled", "empirical"])? {
                "empirical" => Fisher::Empirical,
                _ => Fisher::Sampled,
            };
        }
        if let Some(v) = &self.woodbury {
            c.woodbury = match cx.choice(v, "woodbury", &["applied", "formed"])? {
                "formed" => WoodburyMode::Formed,
                _ => WoodburyMode::Applied,
            };
        }
        Ok(())
    }
}

/// Reads and validates the sweep file at `path`.
pub fn load(path: &Path) -> Result<Sweep, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot read the sweep file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses sweep `text` (read from `file`, which names it in errors and by default).
pub fn parse(file: &Path, text: &str) -> Result<Sweep, SpecError> {
    let cx = Ctx { file, text };
    let raw: RawSpec = toml::from_str(text).map_err(|e| SpecError {
        file: file.to_path_buf(),
        line: e.span().map_or(1, |s| cx.line(&s)),
        message: e.message().trim().to_string(),
    })?;
    let name = match &raw.name {
        Some(n) => n.get_ref().clone(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into()),
    };
    let nonempty = |v: &Spanned<Vec<Spanned<String>>>, field: &str| {
        if v.get_ref().is_empty() {
            Err(cx.err(&v.span(), format!("`{field}` is empty; list at least one")))
        } else {
            Ok(())
        }
    };
    nonempty(&raw.models, "models")?;
    nonempty(&raw.optimizers, "optimizers")?;
    let models: Vec<&str> = raw
        .models
        .get_ref()
        .iter()
        .map(|m| cx.choice(m, "model", &models::MODEL_NAMES))
        .collect::<Result<_, _>>()?;
    let optimizers: Vec<&str> = raw
        .optimizers
        .get_ref()
        .iter()
        .map(|o| cx.choice(o, "optimizer", &OptimizerKind::NAMES))
        .collect::<Result<_, _>>()?;
    let dataset = raw
        .dataset
        .as_ref()
        .map(|d| cx.choice(d, "dataset", &DATASET_NAMES))
        .transpose()?;
    let samples: Vec<usize> = match &raw.samples {
        Some(s) => s
            .get_ref()
            .iter()
            .map(|v| cx.int(v, "samples", 1))
            .collect::<Result<_, _>>()?,
        None => vec![1],
    };
    if samples.is_empty() {
        return Err(cx.err(
            &raw.samples.as_ref().unwrap().span(),
            "`samples` is empty; list at least one",
        ));
    }
    let seeds: Vec<u64> = match &raw.seeds {
        Some(s) => s
            .get_ref()
            .iter()
            .map(|v| cx.int(v, "seeds", 0).map(|x| x as u64))
            .collect::<Result<_, _>>()?,
        None => vec![0],
    };
    let epochs = cx.int(&raw.epochs, "epochs", 1)?;
    let batch_size = raw
        .batch_size
        .as_ref()
        .map(|b| cx.int(b, "batch_size", 1))
        .transpose()?;
    let subset = raw
        .train_subset
        .as_ref()
        .map(|b| cx.int(b, "train_subset", 1))
        .transpose()?;
    let t = *raw.target_accuracy.get_ref();
    let target = cx.real(
        &raw.target_accuracy,
        "target_accuracy",
        t > 0.0 && t <= 1.0,
        "must be in (0, 1]",
    )?;
    for (opt, table) in &raw.optimizer {
        if !optimizers.contains(&opt.as_str()) {
            return Err(cx.err(
                &table.span(),
                format!(
                    "[optimizer.{opt}] names no optimizer of this sweep; valid: {}",
                    optimizers.join(", ")
                ),
            ));
        }
    }

    let mut runs = Vec::new();
    for model in &models {
        for opt in &optimizers {
            let counts: Vec<Option<usize>> = if *opt == "skfac-ss" {
                samples.iter().map(|&s| Some(s)).collect()
            } else {
                vec![None]
            };
            for s in counts {
                for &seed in &seeds {
                    let mut c = TrainConfig::new(model, opt);
                    if let Some(d) = dataset {
                        c.dataset = d.to_string();
                    }
                    c.epochs = epochs;
                    c.seed = seed;
                    if let Some(b) = batch_size {
                        c.batch_size = b;
                    }
                    c.train_subset = subset;
                    raw.hyper.apply(&cx, &mut c)?;
                    if let Some(o) = raw.optimizer.get(*opt) {
                        o.get_ref().apply(&cx, &mut c)?;
                    }
                    if let Some(s) = s {
                        c.samples = s;
                    }
                    c.validate().map_err(|e| SpecError {
                        file: file.to_path_buf(),
                        line: 1,
                        message: e.to_string(),
                    })?;
                    runs.push(PlannedRun { cfg: c, samples: s });
                }
            }
        }
    }
    Ok(Sweep {
        name,
        file: file.to_path_buf(),
        text: text.to_string(),
        target_accuracy: target,
        runs,
    })
}
