//! `skfac train`: one model, one optimizer, evaluated on the test split after each epoch.

use std::path::PathBuf;

use anyhow::Result;
use optimizers::{Error as HyperError, OptimizerKind};

use crate::console::{duration, say, stage_line, Console, Output};
use crate::device::{self, DeviceSpec};
use crate::hyper_flags::{choice, HyperFlags};
use crate::job::Job;
use crate::overrides::OverrideError;
use crate::train::{self, Outcome, TrainConfig};
use crate::{checkpoint, data, sweep, threads};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// One of: mlp, convnet, resnet8, resnet20, resnet34, vgg11, resnet50.
    #[arg(long, default_value = "resnet8")]
    pub model: String,
    #[arg(long, default_value = "sgd", value_parser = choice::<OptimizerKind>())]
    pub optimizer: OptimizerKind,
    /// cifar10 or fashion-mnist [default: fashion-mnist for mlp, else cifar10].
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Train on the first N training images only (of those not held out for validation).
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Hold out N training images as a validation split (class-balanced, the same for every
    /// run), never trained on, evaluated after each epoch.
    #[arg(long, default_value_t = 0)]
    pub validation: usize,
    /// Threads for candle and rayon [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda (GPU 0, or one GPU per MPI process) or cuda:N; CUDA needs `just build-cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Write the trained model's tensors to this safetensors file.
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Print only the run's closing line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub hyper: HyperFlags,
}

impl TrainArgs {
    /// The run these flags describe, checked; a bad value names its flag.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut c = TrainConfig::new(&self.model, self.optimizer);
        if let Some(d) = &self.dataset {
            c.dataset = d.clone();
        }
        c.epochs = self.epochs;
        c.batch_size = self.batch_size;
        c.train_subset = self.train_subset;
        c.validation = self.validation;
        let flag = |key: &str| format!("--{}", key.replace('_', "-"));
        self.hyper
            .0
            .apply(&mut c)
            .map_err(|e: OverrideError| anyhow::anyhow!("{}: {}", flag(&e.key), e.message))?;
        c.validate()
            .map_err(|e| match e.downcast_ref::<HyperError>() {
                Some(HyperError::InvalidHyper { field, value, why }) => {
                    anyhow::anyhow!("{} {value}: {why}", flag(field))
                }
                _ => e,
            })?;
        Ok(c)
    }
}

pub fn run(args: &TrainArgs, job: &Job) -> Result<()> {
    let threads = threads::configure(args.threads.or_else(|| {
        let cores = crate::train::machine_load::cores();
        (job.size() > 1).then(|| (cores / crate::job::local_size()).max(1))
    }))?;
    let cfg = args.config()?;
    let device = args.device.open()?;
    let splits = data::load(&cfg.dataset, &args.data_dir)?;
    let held = cfg.validation.min(splits.train.len());
    let n = cfg.train_subset.map_or(splits.train.len() - held, |s| {
        s.min(splits.train.len() - held)
    });
    let validation = match held {
        0 => String::new(),
        v => format!("{v} validation / "),
    };
    let output = if job.rank() != 0 {
        Output::Silent
    } else {
        Output::detect(args.quiet)
    };
    let strategy = sweep::comm_strategy(cfg.optimizer, &cfg.hyper, job.size());
    if output.epochs() {
        let processes = if job.size() > 1 {
            format!(
                " × {} processes ({} images each per batch, {strategy})",
                job.size(),
                cfg.batch_size / job.size().max(1),
            )
        } else {
            String::new()
        };
        say!(
            "training {} with {} on {} ({} training / {validation}{} test images), batch {}, {} epoch(s), lr {}, seed {}, {} thread(s), device {}{processes}",
            cfg.model, cfg.optimizer_label(), cfg.dataset, n, splits.test.len(), cfg.batch_size,
            cfg.epochs, cfg.hyper.lr, cfg.hyper.seed, threads, device::describe(&device),
        );
    }
    let mut console = Console::new(cfg.epochs, output);
    let (net, mut opt) = train::build_run(&cfg, &splits, &device, job.comm.clone())?;
    let learner = train::Learner {
        net: &net,
        opt: opt.as_mut(),
        device: &device,
        comm: job.comm.as_ref(),
    };
    let summary = train::train(
        &cfg,
        &splits,
        learner,
        &mut console,
        train::Progress::default(),
    )?;
    if output == Output::Silent {
        return Ok(());
    }
    if let Some(path) = &args.save_model {
        checkpoint::save_model(&net, path)?;
        say!("saved the model to {}", path.display());
    }
    if output.epochs() {
        say!("{}", stage_line(&summary.mean_stage_times));
        if job.size() > 1 {
            say!("{}", console.communication(strategy, summary.steps));
        }
    }
    let last = summary.epochs.last();
    match summary.outcome {
        Outcome::Finished => say!(
            "finished: {} with {}, {} steps, test acc {}, {} training ({:.1} s)",
            cfg.model,
            cfg.optimizer_label(),
            summary.steps,
            last.map_or("-".into(), |e| format!("{:.2}%", 100.0 * e.test_accuracy)),
            duration(last.map_or(0.0, |e| e.train_seconds)),
            last.map_or(0.0, |e| e.train_seconds)
        ),
        Outcome::Interrupted { step } => say!("interrupted after {step} steps"),
        // `skfac train`'s observer never pauses.
        Outcome::Paused { epochs } => say!("paused after {epochs} epoch(s)"),
        Outcome::Diverged { step, loss } => {
            say!("diverged at step {step} (loss {loss}); the run stopped there");
            anyhow::bail!("training diverged at step {step}");
        }
    }
    Ok(())
}
