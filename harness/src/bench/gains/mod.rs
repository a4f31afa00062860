//! `skfac bench-gains`: every optimizer's per-iteration stage times at statistics period
//! `T_cov` and inverse period `T_inv` (the paper's Fig. 3), on fixed shapes and random data,
//! stored in the results store for `skfac regress`.
//!
//! Each optimizer runs a short measuring schedule that mixes plain steps, statistics steps
//! and inverse refreshes ([`amortise`]); the stage times at the asked periods are composed
//! from those, so `T_inv` = 200 costs a few steps, not 200. The optimizers run interleaved in
//! rounds (a cycle of steps of each, then again), so a slow patch of a noisy machine lands on
//! all of them alike and the ratios between them stay honest.
//!
//! K-FAC runs in each factorisation it offers (eigendecomposition or Cholesky, f32 or f64), so
//! the gains are stated against K-FAC as its peers run it ([`PEERS`]: eigen, f32) and against
//! its fastest configuration that trains (no refresh failed at every damping).

pub mod amortise;

use anyhow::Result;
use optimizers::curvature::{DenseMethod, InverseDtype, RowAverage};
use optimizers::{build, DampingSplit, Hyper, Optimizer, OptimizerKind};
use reports::regress::{BenchRecord, BenchStage, KfacConfig, PEERS};

use crate::bench::step::{network, random_batch};
use crate::train::{train_step, StepJob, StepOutcome, StepTimes};
use amortise::{KindTimes, StepKind, MEASURE_T_COV, MEASURE_T_INV};

/// One row of the benchmark: the optimizer, skfac-ss's s', and a K-FAC row's configuration.
pub type Row = (OptimizerKind, Option<u32>, Option<KfacConfig>);

/// K-FAC's configurations, the peers' first; `--kfac-configs` picks among them.
pub const KFAC_CONFIGS: [KfacConfig; 4] = [
    PEERS,
    (DenseMethod::Eigen, InverseDtype::F64),
    (DenseMethod::Cholesky, InverseDtype::F32),
    (DenseMethod::Cholesky, InverseDtype::F64),
];

/// A K-FAC configuration as `--kfac-configs` spells it: `cholesky-f32`.
pub fn kfac_config_name((method, dtype): KfacConfig) -> String {
    format!("{}-{}", method.name(), dtype.name())
}

/// The configuration named `name` (`eigen-f32`), or an error listing the valid names.
pub fn parse_kfac_config(name: &str) -> Result<KfacConfig, String> {
    KFAC_CONFIGS
        .into_iter()
        .find(|&c| kfac_config_name(c) == name)
        .ok_or_else(|| {
            let valid: Vec<String> = KFAC_CONFIGS.into_iter().map(kfac_config_name).collect();
            format!(
                "unknown K-FAC configuration `{name}`; valid: {}",
                valid.join(", ")
            )
        })
}

/// The optimizers measured: SGD, Adam, K-FAC in each of `kfac` (in [`KFAC_CONFIGS`]' order),
/// K-FAC with SUA, SKFAC-RS and SKFAC-SS(1). The K-FAC family's other rows factorise as
/// [`hyper`] says.
pub fn rows(kfac: &[KfacConfig]) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![
        (OptimizerKind::Sgd, None, None),
        (OptimizerKind::Adam, None, None),
    ];
    rows.extend(
        KFAC_CONFIGS
            .into_iter()
            .filter(|c| kfac.contains(c))
            .map(|c| (OptimizerKind::Kfac, None, Some(c))),
    );
    rows.extend([
        (OptimizerKind::KfacSua, None, None),
        (OptimizerKind::SkfacRs, None, None),
        (OptimizerKind::SkfacSs, Some(1), None),
    ]);
    rows
}

#[derive(Clone, Debug)]
pub struct GainsConfig {
    pub model: String,
    pub batch: usize,
    /// The periods the stage times are composed for.
    pub t_cov: usize,
    pub t_inv: usize,
    /// Timed cycles per optimizer (each: one refresh, one statistics step, two plain steps),
    /// interleaved across the optimizers.
    pub cycles: usize,
    /// Untimed steps per optimizer first (the first one builds the first inverses).
    pub warmup: usize,
    /// The K-FAC configurations measured (each a row).
    pub kfac_configs: Vec<KfacConfig>,
    /// Where the networks compute.
    pub device: candle_core::Device,
}

/// The hyper-parameters every optimizer runs with: damping that keeps random data from
/// diverging, the periods of `cfg` (what the stored record is comparable by), and the paper's
/// SKFAC (λ on each factor, the moving average of M rows: a Woodbury system of the batch size,
/// as Fig. 3 timed; the default stacked rows make it k·M).
pub fn hyper(cfg: &GainsConfig) -> Hyper {
    Hyper {
        lr: 0.01,
        damping: 0.3,
        damping_split: DampingSplit::Each,
        row_average: RowAverage::Ema,
        t_cov: cfg.t_cov,
        t_inv: cfg.t_inv,
        ..Hyper::default()
    }
}

/// What one benchmark measured: the record to store (amortised stage means), per optimizer
/// the step kinds it was composed from, and the hyper-parameters every optimizer shared.
pub struct Gains {
    pub record: BenchRecord,
    pub kinds: Vec<KindTimes>,
    pub hyper: Hyper,
}

/// Runs the benchmark; `note` hears about progress. The thread count must be set already.
pub fn run(cfg: &GainsConfig, mut note: impl FnMut(&str)) -> Result<Gains> {
    anyhow::ensure!(
        models::MODEL_NAMES.contains(&cfg.model.as_str()),
        "unknown --model `{}`; valid choices: {}",
        cfg.model,
        models::MODEL_NAMES.join(", ")
    );
    anyhow::ensure!(cfg.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(cfg.cycles >= 1, "--cycles must be at least 1");
    anyhow::ensure!(
        cfg.warmup >= 1,
        "--warmup must be at least 1 (the first inverses)"
    );
    let periods = hyper(cfg);
    periods.validate()?;
    let batch = random_batch(&cfg.model, cfg.batch, &cfg.device)?;
    let rows = rows(&cfg.kfac_configs);
    let mut runs: Vec<(models::Network, Box<dyn Optimizer>, usize, KindTimes)> = Vec::new();
    for &(kind, samples, kfac) in &rows {
        let net = network(&cfg.model, &cfg.device)?;
        let (dense_method, inverse_dtype) =
            kfac.unwrap_or((periods.dense_method, periods.inverse_dtype));
        let h = Hyper {
            samples: samples.unwrap_or(1) as usize,
            t_cov: MEASURE_T_COV,
            t_inv: MEASURE_T_INV,
            dense_method,
            inverse_dtype,
            ..periods
        };
        let opt = build(kind, &net.param_set(), &h)?;
        runs.push((net, opt, 0, KindTimes::default()));
    }
    let step = |net: &models::Network, opt: &mut dyn Optimizer, i: usize| -> Result<StepTimes> {
        match train_step(net, opt, &batch, i as u64, StepJob::ALONE)? {
            StepOutcome::Done { times, .. } => Ok(times),
            StepOutcome::Diverged { loss } => {
                anyhow::bail!("the benchmark diverged at step {i} (loss {loss})")
            }
        }
    };
    note(&format!(
        "warm-up: {} step(s) of each optimizer",
        cfg.warmup
    ));
    for (net, opt, i, _) in &mut runs {
        for _ in 0..cfg.warmup {
            step(net, opt.as_mut(), *i)?;
            *i += 1;
        }
    }
    for round in 0..cfg.cycles {
        note(&format!(
            "round {}/{}: {MEASURE_T_INV} steps of each optimizer",
            round + 1,
            cfg.cycles
        ));
        for ((kind, _, _), (net, opt, i, sum)) in rows.iter().zip(&mut runs) {
            for _ in 0..MEASURE_T_INV {
                let t = step(net, opt.as_mut(), *i)?;
                sum.add(StepKind::of(*i), kind.is_second_order(), &t);
                *i += 1;
            }
        }
    }
    let failed: Vec<usize> = runs.iter().map(|r| r.1.failed_refreshes()).collect();
    let kinds: Vec<KindTimes> = runs.into_iter().map(|r| r.3).collect();
    let stages = rows
        .iter()
        .zip(&kinds)
        .zip(failed)
        .map(|(((kind, samples, kfac), k), failed)| BenchStage {
            optimizer: *kind,
            samples: *samples,
            kfac: *kfac,
            failed_refreshes: failed as u32,
            seconds: k.amortised(cfg.t_cov, cfg.t_inv),
        })
        .collect();
    let record = BenchRecord {
        id: 0,
        created_at: String::new(),
        git_commit: crate::meta::git_commit(),
        tags: crate::meta::git_tags(),
        cpu_model: crate::meta::cpu_model(),
        threads: rayon::current_num_threads(),
        device: crate::device::describe(&cfg.device),
        model: cfg.model.clone(),
        batch: cfg.batch,
        steps: cfg.cycles * MEASURE_T_INV,
        t_cov: cfg.t_cov,
        t_inv: cfg.t_inv,
        stages,
    };
    Ok(Gains {
        record,
        kinds,
        hyper: periods,
    })
}
