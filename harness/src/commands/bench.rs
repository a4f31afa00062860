//! The benchmark commands: `skfac bench-step` (one optimizer's step), `skfac bench-gains`
//! (every optimizer, stored for tracking) and `skfac regress` (a record against a baseline).

use std::path::PathBuf;

use anyhow::Result;
use optimizers::OptimizerKind;

use crate::bench_gains::{self, GainsConfig};
use crate::console::say;
use crate::hyper_flags::choice;
use crate::store::{self, Store};
use crate::{bench_step, meta, regress, threads};

#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// One of: mlp, resnet8, resnet20, resnet34, vgg11, resnet50.
    pub model: String,
    #[arg(default_value_t = 32)]
    pub batch: usize,
    /// Threads for candle and rayon [default: all cores].
    pub threads: Option<usize>,
    #[arg(long, default_value = "sgd", value_parser = choice::<OptimizerKind>())]
    pub optimizer: OptimizerKind,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
}

#[derive(clap::Args)]
pub struct BenchGainsArgs {
    #[arg(long, default_value = store::DEFAULT_DB)]
    pub db: PathBuf,
    /// One of: mlp, resnet8, resnet20, resnet34, vgg11, resnet50.
    #[arg(long, default_value = "resnet8")]
    pub model: String,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps per optimizer.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Untimed steps per optimizer first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// The timed steps are run in this many interleaved rounds across the optimizers.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Threads for candle and rayon [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct RegressArgs {
    #[arg(long, default_value = store::DEFAULT_DB)]
    pub db: PathBuf,
    /// `previous` (the record before the newest), `latest-tagged` (the newest record of a
    /// tagged commit) or a commit (prefix).
    #[arg(long, default_value = "previous")]
    pub baseline: String,
    /// How much worse a ratio may get, e.g. 10% or 0.1.
    #[arg(long, default_value = "10%", value_parser = regress::parse_tolerance)]
    pub tolerance: f64,
}

/// `skfac regress` found a regression (the table it printed says which): exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("a ratio regressed")]
pub struct Regressed;

pub fn step(a: &BenchStepArgs) -> Result<()> {
    // An unknown model is refused by models::build, with the valid choices.
    let threads = threads::configure(a.threads)?;
    let r = bench_step::run(&a.model, a.optimizer, a.batch, a.steps, a.warmup)?;
    say!(
        "{}, {}, batch {}, {threads} thread(s), median of {} steps after {} warm-up",
        a.model,
        a.optimizer,
        a.batch,
        a.steps,
        a.warmup
    );
    say!(
        "median per stage: {}; median step {:.2} ms",
        r.median.describe(false),
        r.median_total * 1e3
    );
    say!("{:.1} img/s", r.images_per_second);
    Ok(())
}

pub fn gains(a: &BenchGainsArgs) -> Result<()> {
    let threads = threads::configure(a.threads)?;
    let cfg = GainsConfig {
        model: a.model.clone(),
        batch: a.batch,
        steps: a.steps,
        warmup: a.warmup,
        rounds: a.rounds,
    };
    let store = Store::open(&a.db)?;
    say!(
        "bench-gains: {} at batch {}, {} timed steps per optimizer, {threads} thread(s)",
        cfg.model,
        cfg.batch,
        cfg.steps,
    );
    let rec = bench_gains::run(&cfg, |m| eprintln!("{m}"))?;
    let hyper = serde_json::to_string(&bench_gains::hyper())?;
    let id = store.add_bench(&rec, &meta::crate_versions(), &hyper)?;
    for s in &rec.stages {
        let t = optimizers::StageTimes::from_values(s.seconds);
        say!("{:<13} {}", s.label(), t.describe(false));
    }
    say!(
        "stored as benchmark record {id} (commit {}) in {}",
        rec.git_commit,
        a.db.display()
    );
    Ok(())
}

pub fn regress(a: &RegressArgs) -> Result<()> {
    anyhow::ensure!(
        a.db.exists(),
        "{}: no such database; run `skfac bench-gains --db {}` first",
        a.db.display(),
        a.db.display()
    );
    let store = Store::open(&a.db)?;
    let records = store.bench_records()?;
    let (text, regressed) = regress::report(
        &records,
        &regress::Baseline::parse(&a.baseline),
        a.tolerance,
        &meta::tags_of,
    )?;
    say!("{text}");
    if regressed {
        return Err(Regressed.into());
    }
    Ok(())
}
