//! The benchmark commands: `skfac bench-step` (one optimizer's step), `skfac bench-gains`
//! (every optimizer, stored for tracking), `skfac bench-inverse` (a damped inverse on the
//! device against a host round trip) and `skfac regress` (a record against a baseline).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use optimizers::curvature::{DenseMethod, InverseDtype};
use optimizers::{Hyper, OptimizerKind};
use reports::regress::KfacConfig;
use reports::StageRow;

use crate::bench::gains::{self, GainsConfig};
use crate::bench::{inverse as bench_inverse, regress, step as bench_step};
use crate::console::say;
use crate::device::{self, DeviceSpec};
use crate::hyper_flags::choice;
use crate::store::{self, Store};
use crate::{meta, threads};

#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// One of: mlp, convnet, resnet8, resnet20, resnet34, vgg11, resnet50.
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
    /// cpu, cuda or cuda:N; CUDA needs `just build-cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Also list the time per step of each CPU kernel (convolution passes, batch norm, ReLU,
    /// pooling...) by shape, largest first: where the step goes, without a profiler.
    #[arg(long)]
    pub op_times: bool,
}

#[derive(clap::Args)]
pub struct BenchGainsArgs {
    #[arg(long, default_value = store::DEFAULT_DB)]
    pub db: PathBuf,
    /// One of: mlp, convnet, resnet8, resnet20, resnet34, vgg11, resnet50.
    #[arg(long, default_value = "resnet8")]
    pub model: String,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Statistics period the stage times are amortised over [default: the paper's].
    #[arg(long, default_value_t = Hyper::default().t_cov)]
    pub t_cov: usize,
    /// Inverse period the stage times are amortised over [default: the paper's].
    #[arg(long, default_value_t = Hyper::default().t_inv)]
    pub t_inv: usize,
    /// Timed cycles per optimizer, interleaved across the optimizers; each cycle is one
    /// inverse refresh, one statistics step and two plain steps.
    #[arg(long, default_value_t = 2)]
    pub cycles: usize,
    /// Untimed steps per optimizer first (the first builds the first inverses).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// K-FAC's configurations, comma-separated (eigen-f32, cholesky-f64, ...), each a row;
    /// the fastest is chosen among these. Fewer rows take less memory (each keeps its own
    /// network, factors and inverses alive) [default: all four].
    #[arg(long, value_delimiter = ',', value_parser = gains::parse_kfac_config)]
    pub kfac_configs: Option<Vec<KfacConfig>>,
    /// Also draw the amortised stage times as stacked bars, to this .svg or .png file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Threads for candle and rayon [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N; CUDA needs `just build-cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

#[derive(clap::Args)]
pub struct BenchInverseArgs {
    /// Matrix sizes n, comma-separated: SKFAC's N×N systems (M = 32 rows a batch, k·M
    /// stacked) and K-FAC's factors (3×3×c_in + 1).
    #[arg(long, value_delimiter = ',', default_values_t = [32, 128, 577, 2305, 4609])]
    pub sizes: Vec<usize>,
    /// Methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "cholesky,eigen", value_parser = choice::<DenseMethod>())]
    pub methods: Vec<DenseMethod>,
    /// Precisions, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "f32,f64", value_parser = choice::<InverseDtype>())]
    pub precisions: Vec<InverseDtype>,
    /// Timed repetitions each way (the median is reported), after one untimed.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Threads for candle and rayon [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N; CUDA needs `just build-cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
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
    let device = a.device.open()?;
    let sizes = (a.batch, a.steps, a.warmup);
    let r = bench_step::run(&device, &a.model, a.optimizer, sizes, a.op_times)?;
    say!(
        "{}, {}, batch {}, {}, {threads} thread(s), median of {} steps after {} warm-up",
        a.model,
        a.optimizer,
        a.batch,
        device::describe(&device),
        a.steps,
        a.warmup
    );
    say!(
        "CPU: {}; gemm's {} kernels",
        meta::cpu_model(),
        models::ops::gemm_isa()
    );
    say!(
        "median per stage: {}; median step {:.2} ms",
        r.median.describe(false),
        r.median_total * 1e3
    );
    if a.op_times {
        op_table(&r, a.steps);
    }
    say!("{:.1} img/s", r.images_per_second);
    Ok(())
}

/// The kernels' mean time per step against the median step (the rest is candle's own ops, the
/// autograd bookkeeping and the update), with the products' rate (GF/s, from their im2col
/// operation counts) to set against the machine's peak.
fn op_table(r: &bench_step::StepBench, steps: usize) {
    let step_ms = r.median_total * 1e3;
    say!("mean time per step by CPU kernel, over the {steps} timed steps:");
    say!(
        "{:>9}  {:>6}  {:>5}  {:>6}  {:<24}  shape",
        "ms/step",
        "share",
        "calls",
        "GF/s",
        "kernel"
    );
    let mut counted = 0.0;
    for o in &r.ops {
        let ms = o.seconds * 1e3 / steps as f64;
        counted += ms;
        let rate = match o.flops > 0.0 {
            true => format!("{:.0}", o.flops * o.calls as f64 / o.seconds / 1e9),
            false => String::new(),
        };
        say!(
            "{ms:>9.2}  {:>5.1}%  {:>5}  {rate:>6}  {:<24}  {}",
            100.0 * ms / step_ms,
            o.calls as f64 / steps as f64,
            o.op,
            o.shape
        );
    }
    say!(
        "{:>9.2}  {:>5.1}%  {:>5}  {:>6}  the rest: candle's own ops, autograd, the update",
        step_ms - counted,
        100.0 * (step_ms - counted) / step_ms,
        "",
        ""
    );
}

pub fn inverse(a: &BenchInverseArgs) -> Result<()> {
    let threads = threads::configure(a.threads)?;
    let device = a.device.open()?;
    say!(
        "bench-inverse on {}: (F + λI)⁻¹ of F = XᵀX/(4n), X a 4n×n Gaussian, λ 1e-3, median of \
         {} after 1 warm-up, {threads} thread(s)",
        device::describe(&device),
        a.reps
    );
    say!(
        "on the device: cuSOLVER on a GPU, faer on the CPU (eigen: the eigendecomposition and \
         V·diag(1/(w+λ))·Vᵀ; cholesky: the factorisation and its inverse); via the host (a GPU \
         only): copied to the host, inverted with faer, copied back; difference: the largest of \
         the two inverses' difference, relative to the largest entry; residual: the largest \
         entry of (F + λI)·X − I for the device's X"
    );
    say!(
        "{:>6}  {:<8}  {:<9}  {:>16}  {:>16}  {:>11}  {:>10}  {:>9}",
        "n",
        "method",
        "precision",
        "on the device ms",
        "via the host ms",
        "host/device",
        "difference",
        "residual"
    );
    let rows = bench_inverse::run(&device, &a.sizes, &a.methods, &a.precisions, a.reps)?;
    let or_dash = |x: Option<String>| x.unwrap_or_else(|| "—".into());
    for r in rows {
        say!(
            "{:>6}  {:<8}  {:<9}  {:>16.3}  {:>16}  {:>11}  {:>10}  {:>9.1e}",
            r.n,
            r.method.name(),
            r.precision.name(),
            r.on_device * 1e3,
            or_dash(r.via_host.map(|v| format!("{:.3}", v * 1e3))),
            or_dash(r.via_host.map(|v| format!("{:.2}", v / r.on_device))),
            or_dash(r.difference.map(|d| format!("{d:.1e}"))),
            r.residual
        );
    }
    Ok(())
}

pub fn gains(a: &BenchGainsArgs) -> Result<()> {
    let threads = threads::configure(a.threads)?;
    let cfg = GainsConfig {
        model: a.model.clone(),
        batch: a.batch,
        t_cov: a.t_cov,
        t_inv: a.t_inv,
        cycles: a.cycles,
        warmup: a.warmup,
        kfac_configs: a
            .kfac_configs
            .clone()
            .unwrap_or_else(|| gains::KFAC_CONFIGS.to_vec()),
        device: a.device.open()?,
    };
    // Checked before the benchmark runs, not after it.
    let plot = match &a.plot {
        Some(p) => Some((p, plot_format(p)?)),
        None => None,
    };
    let store = Store::open(&a.db)?;
    say!(
        "bench-gains: {} at batch {} on {}, amortised over T_cov {} and T_inv {}, {} timed cycle(s) per optimizer, {threads} thread(s)",
        cfg.model,
        cfg.batch,
        device::describe(&cfg.device),
        cfg.t_cov,
        cfg.t_inv,
        cfg.cycles,
    );
    let gains = gains::run(&cfg, |m| eprintln!("{m}"))?;
    let rec = &gains.record;
    let hyper = serde_json::to_string(&gains.hyper)?;
    let id = store.add_bench(rec, &meta::crate_versions(), &hyper)?;
    say!("{}", gains_table(&gains));
    if let Some((p, format)) = plot {
        let rows: Vec<StageRow> = rec
            .stages
            .iter()
            .map(|s| StageRow {
                label: s.label(),
                key: s.label(),
                seconds: s.seconds,
                steps: rec.steps,
            })
            .collect();
        let hardware = reports::hardware(&rec.device, &rec.cpu_model, &threads.to_string());
        let title = format!(
            "{}, batch {}: mean time per iteration at T_cov {}, T_inv {} ({hardware})",
            rec.model, rec.batch, rec.t_cov, rec.t_inv
        );
        let fig = reports::plot::stage_bars(&rows, &title)?;
        let bytes = match format {
            "svg" => fig.svg.into_bytes(),
            _ => fig.png,
        };
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
        say!("stage bars written to {}", p.display());
    }
    say!(
        "stored as benchmark record {id} (commit {}) in {}",
        rec.git_commit,
        a.db.display()
    );
    Ok(())
}

/// `svg` or `png`, from the file name; anything else is refused before the benchmark runs.
fn plot_format(p: &Path) -> Result<&'static str> {
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok("svg"),
        Some(e) if e.eq_ignore_ascii_case("png") => Ok("png"),
        _ => anyhow::bail!(
            "--plot {}: the file name must end in .svg or .png",
            p.display()
        ),
    }
}

/// Milliseconds per optimizer: the three step kinds measured and the amortised iteration by
/// stage, with the amortised iteration of K-FAC as its peers run it (`peers/this`) and of the
/// fastest K-FAC that trains (`fastest/this`) over each optimizer's.
fn gains_table(g: &gains::Gains) -> String {
    let rec = &g.record;
    let ms = |v: f64| format!("{:.1}", 1e3 * v);
    let peers_row = rec.kfac(reports::regress::PEERS);
    let peers = peers_row.map(|s| s.step());
    let fastest = rec.fastest_kfac();
    let mut s = format!(
        "{:<20} {:>9} {:>9} {:>9} | {:>10} {:>10} {:>12}",
        "optimizer", "plain", "stats", "inverse", "iteration", "peers/this", "fastest/this"
    );
    for name in crate::train::StepTimes::NAMES {
        s.push_str(&format!(" {:>9}", &name[..name.len().min(9)]));
    }
    s.push('\n');
    for (st, k) in rec.stages.iter().zip(&g.kinds) {
        let second = st.optimizer.is_second_order();
        let dash = || "—".to_string();
        let over = |k: Option<f64>| k.map_or_else(dash, |k| format!("{:.2}", k / st.step()));
        s.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} | {:>10} {:>10} {:>12}",
            st.label(),
            ms(k.plain().iter().sum()),
            if second {
                ms(k.statistics().iter().sum())
            } else {
                dash()
            },
            if second { ms(k.inverse()) } else { dash() },
            ms(st.step()),
            over(peers),
            over(fastest.map(|f| f.step())),
        ));
        for v in st.seconds {
            s.push_str(&format!(" {:>9}", ms(v)));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "(ms; plain and stats: one step of that kind; inverse: one refresh's inverse stage; iteration: the mean step at T_cov {}, T_inv {}; peers: {}, as kfac-pytorch inverts)",
        rec.t_cov, rec.t_inv, peers_row.map_or_else(|| "none".into(), |p| p.label())
    ));
    for st in rec.stages.iter().filter(|s| s.failed_refreshes > 0) {
        s.push_str(&format!(
            "\n{}: {} layer refresh(es) failed at every damping (the layer took its plain gradient): it does not train as measured",
            st.label(),
            st.failed_refreshes
        ));
    }
    let h = &g.hyper;
    s.push_str(&format!(
        "\nkfac-sua, skfac-rs and skfac-ss invert in {} (SUA's channel factors by {}); SKFAC always by Cholesky",
        h.inverse_dtype.name(),
        h.dense_method.name()
    ));
    match fastest {
        Some(f) => s.push_str(&format!("\nfastest K-FAC that trains: {}", f.label())),
        None => {
            s.push_str("\nfastest K-FAC that trains: none (every configuration failed a refresh)")
        }
    }
    s
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
