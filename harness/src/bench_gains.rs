//! `skfac bench-gains`: a fixed, short benchmark of every optimizer's training step on fixed
//! shapes, whose per-stage means go into the results store for `skfac regress`.
//!
//! The optimizers run interleaved in rounds (a slice of steps of each, then again), so a
//! slow patch of a noisy machine lands on all of them alike and the ratios between them stay
//! honest.

use anyhow::Result;
use optimizers::{build, Hyper, Optimizer, OptimizerKind, StageTimes};
use reports::regress::{BenchRecord, BenchStage};

use crate::bench_step::{network, random_batch};
use crate::train::{train_step, StepOutcome};

/// The optimizers measured, with skfac-ss's s'.
pub const OPTIMIZERS: [(OptimizerKind, Option<u32>); 6] = [
    (OptimizerKind::Sgd, None),
    (OptimizerKind::Adam, None),
    (OptimizerKind::Kfac, None),
    (OptimizerKind::KfacSua, None),
    (OptimizerKind::SkfacRs, None),
    (OptimizerKind::SkfacSs, Some(1)),
];

#[derive(Clone, Debug)]
pub struct GainsConfig {
    pub model: String,
    pub batch: usize,
    /// Timed steps per optimizer, split over `rounds`.
    pub steps: usize,
    /// Untimed steps per optimizer first.
    pub warmup: usize,
    pub rounds: usize,
}

/// The hyper-parameters every run uses: refreshes frequent enough that a few hundred steps
/// hold several inversions, and damping that keeps random data from diverging.
pub fn hyper() -> Hyper {
    Hyper {
        lr: 0.01,
        damping: 0.3,
        t_cov: 10,
        t_inv: 50,
        ..Hyper::default()
    }
}

/// Runs the benchmark; `note` hears about progress. The thread count must be set already.
pub fn run(cfg: &GainsConfig, mut note: impl FnMut(&str)) -> Result<BenchRecord> {
    anyhow::ensure!(
        models::MODEL_NAMES.contains(&cfg.model.as_str()),
        "unknown --model `{}`; valid choices: {}",
        cfg.model,
        models::MODEL_NAMES.join(", ")
    );
    anyhow::ensure!(cfg.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(cfg.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(
        cfg.steps >= cfg.rounds,
        "--steps must be at least --rounds ({})",
        cfg.rounds
    );
    let batch = random_batch(&cfg.model, cfg.batch)?;
    let mut runs: Vec<(models::Network, Box<dyn Optimizer>, u64, StageTimes)> = Vec::new();
    for (kind, samples) in OPTIMIZERS {
        let net = network(&cfg.model)?;
        let h = Hyper {
            samples: samples.unwrap_or(1) as usize,
            ..hyper()
        };
        let opt = build(kind, &net.param_set(), &h)?;
        runs.push((net, opt, 0, StageTimes::default()));
    }
    let step = |net: &models::Network, opt: &mut dyn Optimizer, i: u64| -> Result<StageTimes> {
        match train_step(net, opt, &batch, i)? {
            StepOutcome::Done { times, .. } => Ok(times),
            StepOutcome::Diverged { loss } => {
                anyhow::bail!("the benchmark diverged at step {i} (loss {loss})")
            }
        }
    };
    note(&format!("warm-up: {} steps of each optimizer", cfg.warmup));
    for (net, opt, i, _) in &mut runs {
        for _ in 0..cfg.warmup {
            step(net, opt.as_mut(), *i)?;
            *i += 1;
        }
    }
    for round in 0..cfg.rounds {
        let n = cfg.steps / cfg.rounds + usize::from(round < cfg.steps % cfg.rounds);
        note(&format!(
            "round {}/{}: {n} steps of each optimizer",
            round + 1,
            cfg.rounds
        ));
        for (net, opt, i, sum) in &mut runs {
            for _ in 0..n {
                let t = step(net, opt.as_mut(), *i)?;
                *i += 1;
                sum.add(&t);
            }
        }
    }
    let stages = OPTIMIZERS
        .iter()
        .zip(&runs)
        .map(|((kind, samples), (_, _, _, sum))| {
            let v = sum.values();
            BenchStage {
                optimizer: *kind,
                samples: *samples,
                seconds: std::array::from_fn(|k| v[k] / cfg.steps as f64),
            }
        })
        .collect();
    Ok(BenchRecord {
        id: 0,
        created_at: String::new(),
        git_commit: crate::meta::git_commit(),
        tags: crate::meta::git_tags(),
        cpu_model: crate::meta::cpu_model(),
        threads: rayon::current_num_threads(),
        model: cfg.model.clone(),
        batch: cfg.batch,
        steps: cfg.steps,
        stages,
    })
}
