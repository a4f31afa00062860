//! Sweep files (`sweeps/NAME.toml`): the grid of models × optimizers × sampling counts × seeds,
//! shared and per-optimizer hyper-parameters, epochs, training subset and target accuracy.
//! Every mistake is reported before anything runs, as `FILE:LINE: what, and the valid choices`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use optimizers::{Error as HyperError, OptimizerKind};
use serde::Deserialize;
use toml::Spanned;

use super::search::{self, Dimension, RawSearch, Search, SearchRow, Trial};
use crate::data::DATASET_NAMES;
use crate::device::DeviceSpec;
use crate::overrides::{OverrideError, Overrides};
use crate::train::TrainConfig;

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
    validation: Option<Spanned<i64>>,
    target_accuracy: Spanned<f64>,
    device: Option<Spanned<String>>,
    order: Option<Spanned<String>>,
    #[serde(default)]
    hyper: Table,
    #[serde(default)]
    optimizer: BTreeMap<String, Spanned<Table>>,
    search: Option<RawSearch>,
}

/// A table of hyper-parameters: `[hyper]` for every optimizer, `[optimizer.NAME]` for one.
type Table = BTreeMap<String, Spanned<toml::Value>>;

/// Keys the sweep's grid sets, refused in its tables.
const GRID_KEYS: [(&str, &str); 2] = [
    (
        "samples",
        "list skfac-ss's sampling counts in the top-level `samples`",
    ),
    ("seed", "list the seeds in the top-level `seeds`"),
];

/// How a sweep's runs share the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOrder {
    /// Round robin, an epoch at a time, each run going on from its epoch checkpoint: a slow
    /// spell of the machine falls on every run alike, not on whichever trained then. The
    /// default on one process (a data-parallel sweep trains its runs in turn).
    Interleaved,
    /// Each run from start to end, one after another.
    Sequential,
}

impl RunOrder {
    pub const NAMES: [&'static str; 2] = ["interleaved", "sequential"];

    fn parse(s: &str) -> Option<RunOrder> {
        match s {
            "interleaved" => Some(RunOrder::Interleaved),
            "sequential" => Some(RunOrder::Sequential),
            _ => None,
        }
    }
}

/// A parsed, validated sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    pub target_accuracy: f64,
    /// Where its runs compute (`device`; `skfac sweep --device` overrides it).
    pub device: DeviceSpec,
    /// `order`: whether the runs take turns by epoch (the default) or run one after another.
    pub order: RunOrder,
    /// The timed runs, with the file's own settings; under a search each row's runs take its
    /// pick first.
    pub runs: Vec<TrainConfig>,
    pub search: Option<Search>,
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

    fn overrides(&self, e: OverrideError) -> SpecError {
        let span = e.span.unwrap_or(0..0);
        self.err(&span, e.message)
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
    let optimizers: Vec<OptimizerKind> = raw
        .optimizers
        .get_ref()
        .iter()
        .map(|o| OptimizerKind::parse(o.get_ref()).map_err(|e| cx.err(&o.span(), e.to_string())))
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
    let validation = raw
        .validation
        .as_ref()
        .map(|v| cx.int(v, "validation", 0))
        .transpose()?
        .unwrap_or(0);
    let t = *raw.target_accuracy.get_ref();
    let target = cx.real(
        &raw.target_accuracy,
        "target_accuracy",
        t > 0.0 && t <= 1.0,
        "must be in (0, 1]",
    )?;
    let device = match &raw.device {
        Some(d) => d
            .get_ref()
            .parse::<DeviceSpec>()
            .map_err(|e| cx.err(&d.span(), format!("`device`: {e}")))?,
        None => DeviceSpec::Cpu,
    };
    let order = match &raw.order {
        Some(o) => RunOrder::parse(cx.choice(o, "order", &RunOrder::NAMES)?)
            .expect("a valid choice parses"),
        None => RunOrder::Interleaved,
    };
    let shared = Overrides::from_table(&raw.hyper, &GRID_KEYS).map_err(|e| cx.overrides(e))?;
    let mut own: BTreeMap<OptimizerKind, Overrides> = BTreeMap::new();
    for (opt, table) in &raw.optimizer {
        let Some(kind) = optimizers.iter().find(|k| k.name() == opt) else {
            let names: Vec<&str> = optimizers.iter().map(|k| k.name()).collect();
            return Err(cx.err(
                &table.span(),
                format!(
                    "[optimizer.{opt}] names no optimizer of this sweep; valid: {}",
                    names.join(", ")
                ),
            ));
        };
        let o = Overrides::from_table(table.get_ref(), &GRID_KEYS).map_err(|e| cx.overrides(e))?;
        own.insert(*kind, o);
    }

    // One run of the grid, with the file's settings, checked; a bad value points at its line.
    let base = |model: &str, opt: OptimizerKind, s: Option<usize>, seed: u64| {
        let own = own.get(&opt).cloned().unwrap_or_default();
        let mut c = TrainConfig::new(model, opt);
        if let Some(d) = dataset {
            c.dataset = d.to_string();
        }
        c.epochs = epochs;
        if let Some(b) = batch_size {
            c.batch_size = b;
        }
        c.train_subset = subset;
        c.validation = validation;
        c.hyper.seed = seed;
        for o in [&shared, &own] {
            o.apply(&mut c).map_err(|e| cx.overrides(e))?;
        }
        if let Some(s) = s {
            c.hyper.samples = s;
        }
        checked(&cx, c, &[&own, &shared])
    };
    let mut rows: Vec<(&str, OptimizerKind, Option<usize>)> = Vec::new();
    for &model in &models {
        for &opt in &optimizers {
            if opt.samples_matter() {
                rows.extend(samples.iter().map(|&s| (model, opt, Some(s))));
            } else {
                rows.push((model, opt, None));
            }
        }
    }
    let mut runs = Vec::new();
    for &(model, opt, s) in &rows {
        for &seed in &seeds {
            runs.push(base(model, opt, s, seed)?);
        }
    }
    let search = match &raw.search {
        None => None,
        Some(rs) => Some(parse_search(
            &cx,
            rs,
            &rows,
            &optimizers,
            validation,
            |m, o, s| base(m, o, s, seeds[0]),
        )?),
    };
    Ok(Sweep {
        name,
        file: file.to_path_buf(),
        text: text.to_string(),
        target_accuracy: target,
        device,
        order,
        runs,
        search,
    })
}

/// `c` if it validates; otherwise the error at the line of the first of `sources` that set
/// the offending field.
fn checked(cx: &Ctx, c: TrainConfig, sources: &[&Overrides]) -> Result<TrainConfig, SpecError> {
    c.validate().map_err(|e| {
        let field = match e.downcast_ref::<HyperError>() {
            Some(HyperError::InvalidHyper { field, .. }) => *field,
            _ => "",
        };
        match sources.iter().find_map(|o| o.span_of(field)) {
            Some(span) => cx.err(&span, e.to_string()),
            None => SpecError {
                file: cx.file.to_path_buf(),
                line: 1,
                message: e.to_string(),
            },
        }
    })?;
    Ok(c)
}

/// The `[search]` section: its budget and each row's trials, built on `base` (a row's run
/// with the file's settings).
fn parse_search(
    cx: &Ctx,
    raw: &RawSearch,
    rows: &[(&str, OptimizerKind, Option<usize>)],
    optimizers: &[OptimizerKind],
    validation: usize,
    base: impl Fn(&str, OptimizerKind, Option<usize>) -> Result<TrainConfig, SpecError>,
) -> Result<Search, SpecError> {
    let trials = cx.int(&raw.trials, "search.trials", 1)?;
    let epochs = cx.int(&raw.epochs, "search.epochs", 1)?;
    let train_subset = raw
        .train_subset
        .as_ref()
        .map(|v| cx.int(v, "search.train_subset", 1))
        .transpose()?;
    if let Some(sel) = &raw.select {
        if sel.get_ref() != search::SELECT {
            return Err(cx.err(
                &sel.span(),
                format!(
                    "unknown search.select `{}`; valid: {}",
                    sel.get_ref(),
                    search::SELECT
                ),
            ));
        }
    }
    if validation == 0 {
        return Err(cx.err(
            &raw.trials.span(),
            "[search] judges its trials on a validation split: set the top-level `validation` (for example validation = 5000)",
        ));
    }
    let mut shared: BTreeMap<String, Dimension> = BTreeMap::new();
    let mut own: BTreeMap<OptimizerKind, BTreeMap<String, Dimension>> = BTreeMap::new();
    for (key, v) in &raw.space {
        match v.get_ref() {
            toml::Value::Table(t) => {
                let Some(&kind) = optimizers.iter().find(|k| k.name() == key) else {
                    let names: Vec<&str> = optimizers.iter().map(|k| k.name()).collect();
                    return Err(cx.err(
                        &v.span(),
                        format!(
                            "[search.space.{key}] names no optimizer of this sweep; valid: {}",
                            names.join(", ")
                        ),
                    ));
                };
                let dims = own.entry(kind).or_default();
                for (k, values) in t {
                    let values = Spanned::new(v.span(), values.clone());
                    dims.insert(k.clone(), dimension(cx, k, &values)?);
                }
            }
            _ => {
                shared.insert(key.clone(), dimension(cx, key, v)?);
            }
        }
    }
    let mut search_rows = Vec::new();
    for &(model, opt, s) in rows {
        let mut dims = shared.clone();
        dims.extend(own.get(&opt).cloned().unwrap_or_default());
        let dims: Vec<Dimension> = dims.into_values().collect();
        let mut row = SearchRow {
            model: model.to_string(),
            optimizer: opt,
            samples: s,
            trials: Vec::new(),
        };
        for choice in search::settings(&dims, trials) {
            let mut c = base(model, opt, s)?;
            c.epochs = epochs;
            c.train_subset = train_subset.or(c.train_subset);
            let mut values = Vec::new();
            let mut shown = Vec::new();
            for (d, &i) in dims.iter().zip(&choice) {
                let (v, o) = &d.values[i];
                o.apply(&mut c).map_err(|e| cx.overrides(e))?;
                values.push(o.clone());
                shown.push(format!("{} {}", d.key, search::show(v.get_ref())));
            }
            let sources: Vec<&Overrides> = values.iter().collect();
            let config = checked(cx, c, &sources)?;
            row.trials.push(Trial {
                config,
                values,
                setting: shown.join(", "),
            });
        }
        search_rows.push(row);
    }
    Ok(Search {
        epochs,
        rows: search_rows,
    })
}

/// One searched key: a non-empty list of values, each checked as the key's kind.
fn dimension(cx: &Ctx, key: &str, v: &Spanned<toml::Value>) -> Result<Dimension, SpecError> {
    let toml::Value::Array(items) = v.get_ref() else {
        return Err(cx.err(
            &v.span(),
            format!("`search.space.{key}`: give the values to try as a list, for example {key} = [0.01, 0.1]"),
        ));
    };
    if items.is_empty() {
        return Err(cx.err(
            &v.span(),
            format!("`search.space.{key}` is empty; list at least one value"),
        ));
    }
    let values = items
        .iter()
        .map(|item| {
            let one = Spanned::new(v.span(), item.clone());
            let table = BTreeMap::from([(key.to_string(), one.clone())]);
            let o = Overrides::from_table(&table, &GRID_KEYS).map_err(|e| cx.overrides(e))?;
            Ok((one, o))
        })
        .collect::<Result<_, SpecError>>()?;
    Ok(Dimension {
        key: key.to_string(),
        values,
    })
}
