//! Runs a sweep: every planned run in turn (or in `--jobs` worker processes), skipping the
//! finished ones and resuming an interrupted one from its last checkpoint.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use optimizers::{Channel, Communicator, OptimizerKind};

use super::record::{Follower, Recorder};
use super::spec::Sweep;
use crate::checkpoint::Checkpoints;
use crate::data::{self, Splits};
use crate::meta;
use crate::store::{RunMeta, Status, Store};
use crate::train::{build_run, run_key, train_from_shared, Outcome, TrainConfig};

pub struct SweepOptions {
    pub db: PathBuf,
    pub data_dir: PathBuf,
    /// Checkpoints go under `results/checkpoints/<sweep>/<run id>/`.
    pub results: PathBuf,
    pub threads: usize,
    /// Run only the planned runs whose index is `k (mod n)`: one worker of `--jobs n`.
    pub shard: Option<(usize, usize)>,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
    /// The processes of a data-parallel sweep (every run trained by all of them); process 0
    /// writes the store and the checkpoints, the others follow ([`follow_sweep`]).
    pub comm: Arc<dyn Communicator>,
}

/// Process 0's `value` on every process of the job (the others pass `None`): a broadcast as
/// a sum to which only process 0 contributes.
pub(super) fn share(comm: &dyn Communicator, value: Option<f64>) -> f64 {
    let mut v = [value.unwrap_or(0.0)];
    comm.all_reduce_sum_f64(&mut v, Channel::Other);
    v[0]
}

/// What a data-parallel run exchanges besides gradients, as recorded in the store.
pub fn comm_strategy(optimizer: OptimizerKind, processes: usize) -> &'static str {
    match optimizer {
        _ if processes == 1 => "none",
        OptimizerKind::Kfac | OptimizerKind::KfacSua => "allreduce-factors",
        OptimizerKind::SkfacRs | OptimizerKind::SkfacSs => "allgather-rows",
        OptimizerKind::Sgd | OptimizerKind::Adam => "allreduce-grads",
    }
}

fn checkpoints_of(opts: &SweepOptions, sweep: &Sweep, run: i64) -> Checkpoints {
    Checkpoints::new(
        opts.results
            .join("checkpoints")
            .join(&sweep.name)
            .join(run.to_string()),
    )
}

/// The part of a data-parallel sweep that processes other than 0 run: the same runs in the
/// same order, told by process 0 which to skip and which run id (and so checkpoint) to use,
/// without touching the store. Checkpoints must be on a file system every process sees.
pub fn follow_sweep(sweep: &Sweep, opts: &SweepOptions, stop: &AtomicBool) -> Result<()> {
    let comm = opts.comm.as_ref();
    let mut loaded: Option<(String, Splits)> = None;
    for cfg in &sweep.runs {
        if share(comm, None) != 0.0 {
            continue; // done already
        }
        let run = share(comm, None) as i64;
        if loaded.as_ref().is_none_or(|(n, _)| *n != cfg.dataset) {
            loaded = Some((
                cfg.dataset.clone(),
                data::load(&cfg.dataset, &opts.data_dir)?,
            ));
        }
        let splits = &loaded.as_ref().expect("loaded above").1;
        let checkpoints = checkpoints_of(opts, sweep, run);
        let device = Device::Cpu;
        let (net, mut opt) = build_run(cfg, splits, &device, opts.comm.clone())?;
        let progress = checkpoints.load(&net, opt.as_mut())?.unwrap_or_default();
        let leader_step = share(comm, None) as usize;
        anyhow::ensure!(
            leader_step == progress.step,
            "process {} found its checkpoint at step {} but process 0 at step {leader_step}: \
             the results folder ({}) must be one folder every process sees",
            comm.rank(),
            progress.step,
            opts.results.display()
        );
        let mut obs = Follower { stop };
        let summary = train_from_shared(
            cfg,
            splits,
            &net,
            opt.as_mut(),
            &device,
            &mut obs,
            progress,
            comm,
        )?;
        if matches!(summary.outcome, Outcome::Interrupted { .. }) {
            return Ok(());
        }
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepOutcome {
    /// Every run is finished or diverged (some may have failed: see the store).
    Done {
        ran: usize,
        skipped: usize,
        failed: usize,
    },
    /// Stopped on request; run again to resume.
    Interrupted,
}

pub fn run_sweep(sweep: &Sweep, opts: &SweepOptions, stop: &AtomicBool) -> Result<SweepOutcome> {
    let comm = opts.comm.as_ref();
    let procs = comm.size();
    let store = Store::open(&opts.db)?;
    let sweep_id = store.sweep(
        &sweep.name,
        &sweep.file.display().to_string(),
        &sweep.text,
        Some(sweep.target_accuracy),
    )?;
    let mine: Vec<(usize, &TrainConfig)> = sweep
        .runs
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|(k, n)| i % n == k))
        .collect();
    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let overall = multi.add(ProgressBar::new(mine.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix} runs {pos}/{len} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    overall.set_prefix(sweep.name.clone());
    let epoch_bar = multi.add(ProgressBar::new(0));
    epoch_bar.set_style(
        ProgressStyle::with_template("  {prefix} {bar:30} {pos}/{len} steps, ETA {eta}")
            .expect("valid template"),
    );

    // Messages go above the bars on a terminal, to stderr otherwise (hidden bars drop them).
    let note = |msg: String| {
        if opts.progress {
            overall.println(msg);
        } else {
            eprintln!("{msg}");
        }
    };
    let mut loaded: Option<(String, Splits)> = None;
    let (mut ran, mut skipped, mut failed) = (0, 0, 0);
    for (i, cfg) in mine {
        let key = run_key(cfg);
        let done = store
            .find_run(sweep_id, &key)?
            .is_some_and(|r| r.status.is_done());
        if procs > 1 {
            share(comm, Some(if done { 1.0 } else { 0.0 }));
        }
        if done {
            skipped += 1;
            overall.inc(1);
            continue;
        }
        if loaded.as_ref().is_none_or(|(n, _)| *n != cfg.dataset) {
            data::obtain(&cfg.dataset, &opts.data_dir)?;
            loaded = Some((
                cfg.dataset.clone(),
                data::load(&cfg.dataset, &opts.data_dir)?,
            ));
        }
        let splits = &loaded.as_ref().expect("loaded above").1;
        let label = format!(
            "#{i} {} {} seed {}",
            cfg.model,
            cfg.optimizer_label(),
            cfg.hyper.seed
        );
        overall.set_message(label.clone());
        epoch_bar.set_prefix(label.clone());
        let run_meta = RunMeta {
            run_key: key.clone(),
            model: cfg.model.clone(),
            dataset: cfg.dataset.clone(),
            optimizer: cfg.optimizer,
            samples: cfg.samples(),
            seed: cfg.hyper.seed,
            hyper_json: serde_json::to_string(&cfg.hyper)?,
            git_commit: meta::git_commit(),
            crate_versions: meta::crate_versions(),
            cpu_model: meta::cpu_model(),
            threads: opts.threads,
            processes: procs,
            comm_strategy: comm_strategy(cfg.optimizer, procs).into(),
        };
        let run = store.start_run(Some(sweep_id), &run_meta)?;
        if procs > 1 {
            // The data is on disk now, and the followers learn where the checkpoints go.
            share(comm, Some(run as f64));
        }
        let checkpoints = checkpoints_of(opts, sweep, run);
        let mut rec = Recorder {
            store: &store,
            run,
            checkpoints: &checkpoints,
            stop,
            bar: &epoch_bar,
            buffer: Vec::new(),
        };
        let result = (|| -> Result<Outcome> {
            let device = Device::Cpu;
            let (net, mut opt) = build_run(cfg, splits, &device, opts.comm.clone())?;
            let progress = checkpoints.load(&net, opt.as_mut())?.unwrap_or_default();
            if procs > 1 {
                // Every process must resume from the same step (a shared results folder).
                share(comm, Some(progress.step as f64));
            }
            if progress.step > 0 {
                note(format!("{label}: resuming at step {}", progress.step));
            }
            store.truncate_run(run, progress.step, progress.epochs.len())?;
            let summary = train_from_shared(
                cfg,
                splits,
                &net,
                opt.as_mut(),
                &device,
                &mut rec,
                progress,
                comm,
            )?;
            rec.flush()?;
            Ok(summary.outcome)
        })();
        ran += 1;
        match result {
            Ok(Outcome::Finished) => {
                store.end_run(run, Status::Finished, None)?;
                checkpoints.clear()?;
            }
            Ok(Outcome::Diverged { step, loss }) => {
                let why = format!("diverged at step {step} (loss {loss})");
                note(format!("{label}: {why}"));
                store.end_run(run, Status::Diverged, Some(&why))?;
                checkpoints.clear()?;
            }
            Ok(Outcome::Interrupted { step }) => {
                note(format!(
                    "{label}: interrupted after step {step}; checkpointed"
                ));
                multi.clear().ok();
                return Ok(SweepOutcome::Interrupted);
            }
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return Err(e);
                }
                failed += 1;
                let why = format!("{e:#}");
                note(format!("{label}: failed: {why}"));
                store.end_run(run, Status::Failed, Some(&why))?;
                if procs > 1 {
                    // The other processes may be mid-step, waiting for this one: end the job
                    // (the run is recorded; started again, the sweep retries it).
                    note("ending the data-parallel job: a run failed on process 0".into());
                    comm.abort(1);
                }
            }
        }
        overall.inc(1);
    }
    overall.finish_and_clear();
    epoch_bar.finish_and_clear();
    Ok(SweepOutcome::Done {
        ran,
        skipped,
        failed,
    })
}
