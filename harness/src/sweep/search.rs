//! A sweep's `[search]`: before the timed runs, each row of the sweep (a model and optimizer,
//! with skfac-ss's s') tries settings from a declared space for a short budget, and its timed
//! runs use the setting with the best validation accuracy at the end of that budget. So a
//! method cannot win by its neighbours' bad settings (as MLCommons AlgoPerf requires of its
//! submissions), and selection never looks at the test split.
//!
//! ```toml
//! validation = 5000        # the split the trials are judged on (required)
//! [search]
//! trials = 4               # settings tried per row (all of the space when it has fewer)
//! epochs = 1               # each trial's budget
//! train_subset = 10000     # images per trial [default: the sweep's]
//! select = "validation-accuracy"
//! [search.space]           # every optimizer: each key a list of values
//! lr = [0.02, 0.05, 0.1]
//! [search.space.kfac]      # one optimizer, over the shared space
//! damping = [0.03, 0.3]
//! ```
//!
//! A row's space is the product of its keys' values; when it holds more settings than
//! `trials`, a fixed pseudo-random subset of them is tried (the same every time). Trials are
//! stored as the runs of a sweep of their own, [`trial_sweep_name`], so a finished search is
//! not run again and the timed runs' tables stay theirs.

use std::collections::BTreeMap;

use optimizers::OptimizerKind;
use rand::SeedableRng;
use serde::Deserialize;
use toml::Spanned;

use crate::overrides::Overrides;
use crate::store::{Status, Store};
use crate::train::{run_key, TrainConfig};

/// The only selection rule: the best validation accuracy at the end of a trial's budget.
pub const SELECT: &str = "validation-accuracy";

/// The search section as the file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSearch {
    pub trials: Spanned<i64>,
    pub epochs: Spanned<i64>,
    pub train_subset: Option<Spanned<i64>>,
    pub select: Option<Spanned<String>>,
    #[serde(default)]
    pub space: BTreeMap<String, Spanned<toml::Value>>,
}

/// One key of a space and its values, each a one-entry override with where it was written.
#[derive(Clone, Debug)]
pub(super) struct Dimension {
    pub key: String,
    pub values: Vec<(Spanned<toml::Value>, Overrides)>,
}

/// One setting tried: its values (to apply over the row's own) and how to show them.
#[derive(Clone, Debug)]
pub struct Trial {
    pub config: TrainConfig,
    /// One override per searched key.
    pub values: Vec<Overrides>,
    /// `lr 0.05, damping 0.3`.
    pub setting: String,
}

/// A row of the sweep and the settings it tries.
#[derive(Clone, Debug)]
pub struct SearchRow {
    pub model: String,
    pub optimizer: OptimizerKind,
    pub samples: Option<usize>,
    pub trials: Vec<Trial>,
}

impl SearchRow {
    /// `resnet8 skfac-ss (s'=2)`.
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.model,
            self.optimizer.label(self.samples.unwrap_or(1))
        )
    }

    /// Whether `cfg` (a timed run) belongs to this row.
    pub fn holds(&self, cfg: &TrainConfig) -> bool {
        cfg.model == self.model && cfg.optimizer == self.optimizer && cfg.samples() == self.samples
    }
}

/// The parsed search: each trial's budget in epochs and, per row, its trials.
#[derive(Clone, Debug)]
pub struct Search {
    pub epochs: usize,
    pub rows: Vec<SearchRow>,
}

impl Trial {
    /// `cfg` (a timed run of this trial's row) with this trial's setting.
    pub fn apply_to(&self, cfg: &TrainConfig) -> anyhow::Result<TrainConfig> {
        let mut c = cfg.clone();
        for v in &self.values {
            v.apply(&mut c)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
        }
        Ok(c)
    }
}

impl Search {
    /// Every trial of every row, in order.
    pub fn all_trials(&self) -> impl Iterator<Item = &Trial> {
        self.rows.iter().flat_map(|r| r.trials.iter())
    }
}

/// What [`trial_sweep_name`] appends to a sweep's name.
pub const SEARCH_SUFFIX: &str = ":search";

/// The sweep the trials of sweep `name` are stored under.
pub fn trial_sweep_name(name: &str) -> String {
    format!("{name}{SEARCH_SUFFIX}")
}

/// The settings of a space: every combination of its dimensions' values (keys in name
/// order), or a fixed pseudo-random `trials` of them when there are more.
pub(super) fn settings(dims: &[Dimension], trials: usize) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = vec![Vec::new()];
    for d in dims {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                (0..d.values.len()).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    if dims.is_empty() {
        return Vec::new();
    }
    if all.len() <= trials {
        return all;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut picked = rand::seq::index::sample(&mut rng, all.len(), trials).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| all[i].clone()).collect()
}

/// A TOML value as a setting shows it.
pub(super) fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// What the search found for one row: the picked trial's index and its validation accuracy,
/// or none when no trial finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    pub trial: Option<usize>,
    pub validation_accuracy: Option<f64>,
}

/// A trial as the store holds it: its status (`None` before it started) and, when it
/// finished, its final validation accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialOutcome {
    pub status: Option<Status>,
    pub validation_accuracy: Option<f64>,
}

impl TrialOutcome {
    /// Finished, diverged or failed: nothing more will come of it in this sweep.
    pub fn ended(&self) -> bool {
        matches!(
            self.status,
            Some(Status::Finished | Status::Diverged | Status::Failed)
        )
    }
}

/// Each trial of `row` as sweep `sweep_id` of the store holds it.
pub fn trial_outcomes(
    store: &Store,
    sweep_id: i64,
    row: &SearchRow,
) -> anyhow::Result<Vec<TrialOutcome>> {
    row.trials
        .iter()
        .map(|t| {
            let Some(r) = store.find_run(sweep_id, &run_key(&t.config))? else {
                return Ok(TrialOutcome {
                    status: None,
                    validation_accuracy: None,
                });
            };
            let validation_accuracy = match r.status {
                Status::Finished => store
                    .epochs(r.id)?
                    .last()
                    .and_then(|e| e.validation_accuracy),
                _ => None,
            };
            Ok(TrialOutcome {
                status: Some(r.status),
                validation_accuracy,
            })
        })
        .collect()
}

/// The best final validation accuracy among `outcomes` (ties to the earlier trial).
pub fn pick(outcomes: &[TrialOutcome]) -> Pick {
    let mut best: Option<(usize, f64)> = None;
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(a) = o.validation_accuracy {
            if best.is_none_or(|(_, b)| a > b) {
                best = Some((i, a));
            }
        }
    }
    Pick {
        trial: best.map(|b| b.0),
        validation_accuracy: best.map(|b| b.1),
    }
}

/// The timed `runs` with each row's pick applied; a row without one (nothing to search, or
/// no trial finished) keeps the file's settings.
pub fn with_picks(
    runs: &[TrainConfig],
    search: &Search,
    picks: &[Pick],
) -> anyhow::Result<Vec<TrainConfig>> {
    runs.iter()
        .map(|cfg| {
            let picked = search
                .rows
                .iter()
                .zip(picks)
                .find(|(row, _)| row.holds(cfg))
                .and_then(|(row, p)| p.trial.map(|i| &row.trials[i]));
            match picked {
                Some(trial) => trial.apply_to(cfg),
                None => Ok(cfg.clone()),
            }
        })
        .collect()
}

/// The search behind sweep `name` as the store holds it, for its report: every trial of
/// every row with its setting, how it ended and whether its row took it; empty when the sweep
/// had no search (or its file no longer parses).
pub fn trial_table(store: &Store, name: &str) -> anyhow::Result<Vec<reports::SearchTrial>> {
    let Some((_, file, text)) = store.sweep_spec(name)? else {
        return Ok(Vec::new());
    };
    let Some(search) = super::parse(std::path::Path::new(&file), &text)
        .ok()
        .and_then(|s| s.search)
    else {
        return Ok(Vec::new());
    };
    let trial_sweep = store.sweep_spec(&trial_sweep_name(name))?.map(|s| s.0);
    let mut out = Vec::new();
    for row in &search.rows {
        let outcomes = match trial_sweep {
            Some(id) => trial_outcomes(store, id, row)?,
            None => Vec::new(),
        };
        // The pick as the sweep made it: once every trial of the row had ended.
        let picked = (!outcomes.is_empty() && outcomes.iter().all(TrialOutcome::ended))
            .then(|| pick(&outcomes).trial)
            .flatten();
        for (i, t) in row.trials.iter().enumerate() {
            let o = outcomes.get(i);
            out.push(reports::SearchTrial {
                model: row.model.clone(),
                optimizer: row.optimizer,
                samples: row.samples.map(|s| s as u32),
                setting: t.setting.clone(),
                status: o
                    .and_then(|o| o.status)
                    .map_or("not run".into(), |s| s.as_str().to_string()),
                validation_accuracy: o.and_then(|o| o.validation_accuracy),
                picked: picked == Some(i),
            });
        }
    }
    Ok(out)
}

/// A line saying what the search picked for `row`.
pub fn describe_pick(row: &SearchRow, p: &Pick) -> String {
    match (p.trial, p.validation_accuracy) {
        (Some(i), Some(a)) => format!(
            "search: {} takes {} (validation acc {:.2}%, the best of {} trial(s))",
            row.label(),
            row.trials[i].setting,
            100.0 * a,
            row.trials.len()
        ),
        _ if row.trials.is_empty() => format!(
            "search: {} has no space to search; it keeps the file's settings",
            row.label()
        ),
        _ => format!(
            "search: no trial of {} finished; it keeps the file's settings",
            row.label()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(key: &str, n: usize) -> Dimension {
        Dimension {
            key: key.into(),
            values: (0..n)
                .map(|i| {
                    (
                        Spanned::new(0..0, toml::Value::Integer(i as i64)),
                        Overrides::default(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_small_space_is_tried_whole_and_a_large_one_by_a_fixed_subset() {
        let dims = [dim("damping", 2), dim("lr", 3)];
        let all = settings(&dims, 6);
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], vec![0, 0]);
        assert_eq!(all[1], vec![0, 1]);
        assert_eq!(all[5], vec![1, 2]);
        let some = settings(&dims, 4);
        assert_eq!(some.len(), 4);
        assert!(some.iter().all(|s| all.contains(s)));
        let mut distinct = some.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{some:?}");
        assert_eq!(some, settings(&dims, 4), "the same subset every time");
        assert!(settings(&[], 4).is_empty());
    }

    #[test]
    fn the_pick_is_the_best_finished_trial_and_ties_go_to_the_first() {
        let o = |status: Option<Status>, acc: Option<f64>| TrialOutcome {
            status,
            validation_accuracy: acc,
        };
        let done = Some(Status::Finished);
        let outcomes = [
            o(done, Some(0.5)),
            o(Some(Status::Diverged), None),
            o(done, Some(0.7)),
            o(done, Some(0.7)),
            o(None, None),
        ];
        assert_eq!(
            pick(&outcomes),
            Pick {
                trial: Some(2),
                validation_accuracy: Some(0.7)
            }
        );
        assert!(!outcomes[4].ended() && outcomes[1].ended());
        assert_eq!(pick(&outcomes[1..2]).trial, None);
    }
}
