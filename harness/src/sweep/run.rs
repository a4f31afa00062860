//! Runs a sweep: its runs taking turns by epoch (or one after another, or in `--jobs` worker
//! processes), skipping the finished ones and resuming an interrupted one from its last
//! checkpoint.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use candle_core::Device;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use optimizers::curvature::shared::DistributeInverses;
use optimizers::{Channel, Communicator, Hyper, OptimizerKind};

use super::record::{Follower, Recorder};
use super::search;
use super::spec::{RunOrder, Sweep};
use crate::checkpoint::Checkpoints;
use crate::console::{duration, say, Output};
use crate::data::{self, Splits};
use crate::meta;
use crate::store::{RunMeta, Status, Store, StoreError};
use crate::train::{build_run, run_key, train, Learner, Outcome, TrainConfig};

pub struct SweepOptions {
    pub db: PathBuf,
    pub data_dir: PathBuf,
    /// Checkpoints go under `results/checkpoints/<sweep>/<run id>/`.
    pub results: PathBuf,
    pub threads: usize,
    /// The device every run computes on.
    pub device: Device,
    /// Run only the planned runs whose index is `k (mod n)`: one worker of `--jobs n`.
    pub shard: Option<(usize, usize)>,
    /// Progress bars, plain lines, or only a line per run.
    pub output: Output,
    /// This process's name on the runs it trains ([`lease_owner`]).
    pub owner: String,
    /// How long a run's lease lasts without renewal (renewed every quarter of it).
    pub lease_seconds: f64,
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
pub fn comm_strategy(optimizer: OptimizerKind, hyper: &Hyper, processes: usize) -> &'static str {
    match optimizer {
        _ if processes == 1 => "none",
        OptimizerKind::Kfac | OptimizerKind::KfacSua
            if hyper.distribute_inverses == DistributeInverses::On =>
        {
            "allreduce-factors-share-inverses"
        }
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
        let device = opts.device.clone();
        let (net, mut opt) = build_run(cfg, splits, &device, opts.comm.clone())?;
        let progress = checkpoints
            .load(&net, opt.as_mut())?
            .progress
            .unwrap_or_default();
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
        let learner = Learner {
            net: &net,
            opt: opt.as_mut(),
            device: &device,
            comm,
        };
        let summary = train(cfg, splits, learner, &mut obs, progress)?;
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
    let store = Store::open(&opts.db)?;
    let sweep_id = store.sweep(
        &sweep.name,
        &sweep.file.display().to_string(),
        &sweep.text,
        Some(sweep.target_accuracy),
    )?;
    let bars = opts.output == Output::Bars;
    let multi = MultiProgress::with_draw_target(if bars {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let overall = multi.add(ProgressBar::new(0));
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
    let cx = Stage {
        sweep,
        opts,
        stop,
        store: &store,
        multi,
        overall,
        epoch_bar,
        // What made the numbers, the same for every run: read once (two git calls), not on
        // every retry of a run another process holds.
        git_commit: meta::git_commit(),
        crate_versions: meta::crate_versions(),
        cpu_model: meta::cpu_model(),
        cores: crate::train::machine_load::cores(),
    };
    let mut state = StageState::default();
    let timed = match &sweep.search {
        None => sweep.runs.clone(),
        Some(search) => {
            let trial_sweep = store.sweep(
                &search::trial_sweep_name(&sweep.name),
                &sweep.file.display().to_string(),
                &sweep.text,
                None,
            )?;
            let trials: Vec<TrainConfig> = search.all_trials().map(|t| t.config.clone()).collect();
            if !cx.run_stage(trial_sweep, "trial", &trials, opts.shard, &mut state)? {
                return Ok(SweepOutcome::Interrupted);
            }
            // A `--jobs` worker then goes over every trial: the other workers' finished ones
            // are skipped, those they still train are waited for, and any a dead worker left
            // are taken over, so that every worker picks from the same finished search.
            if opts.shard.is_some()
                && !cx.run_stage(trial_sweep, "trial", &trials, None, &mut state)?
            {
                return Ok(SweepOutcome::Interrupted);
            }
            let picks = cx.picks(trial_sweep, search)?;
            search::with_picks(&sweep.runs, search, &picks)?
        }
    };
    if !cx.run_stage(sweep_id, "run", &timed, opts.shard, &mut state)? {
        return Ok(SweepOutcome::Interrupted);
    }
    cx.overall.finish_and_clear();
    cx.epoch_bar.finish_and_clear();
    Ok(SweepOutcome::Done {
        ran: state.ran,
        skipped: state.skipped,
        failed: state.failed,
    })
}

/// What every stage of a sweep shares: the sweep, the store, the bars, and what made the
/// numbers.
struct Stage<'a> {
    sweep: &'a Sweep,
    opts: &'a SweepOptions,
    stop: &'a AtomicBool,
    store: &'a Store,
    multi: MultiProgress,
    overall: ProgressBar,
    epoch_bar: ProgressBar,
    git_commit: String,
    crate_versions: String,
    cpu_model: String,
    cores: usize,
}

/// What the stages carry from one to the next: the loaded data sets (by name: runs on
/// different data sets take turns) and the counts.
#[derive(Default)]
struct StageState {
    loaded: std::collections::BTreeMap<String, Splits>,
    ran: usize,
    skipped: usize,
    failed: usize,
}

impl Stage<'_> {
    /// Messages go above the bars on a terminal, to stderr otherwise (hidden bars drop them).
    fn note(&self, msg: String) {
        if self.opts.output == Output::Bars {
            self.overall.println(msg);
        } else {
            eprintln!("{msg}");
        }
    }

    /// Each row's pick, once every trial of `search` has ended; says which.
    fn picks(&self, trial_sweep: i64, search: &search::Search) -> Result<Vec<search::Pick>> {
        let mut picks = Vec::with_capacity(search.rows.len());
        for row in &search.rows {
            let outcomes = search::trial_outcomes(self.store, trial_sweep, row)?;
            anyhow::ensure!(
                outcomes.iter().all(search::TrialOutcome::ended),
                "{}: a search trial has not ended; run the sweep again",
                row.label()
            );
            let p = search::pick(&outcomes);
            if self.opts.shard.is_none_or(|(k, _)| k == 0) {
                self.note(search::describe_pick(row, &p));
            }
            picks.push(p);
        }
        Ok(picks)
    }

    /// Trains `runs` (worker `k`'s share `i ≡ k (mod n)` of them under `shard`) into sweep
    /// `sweep_id` of the store, skipping finished ones and resuming interrupted ones; `false`
    /// when asked to stop.
    fn run_stage(
        &self,
        sweep_id: i64,
        what: &str,
        runs: &[TrainConfig],
        shard: Option<(usize, usize)>,
        state: &mut StageState,
    ) -> Result<bool> {
        let (sweep, opts, stop, store) = (self.sweep, self.opts, self.stop, self.store);
        let comm = opts.comm.as_ref();
        let procs = comm.size();
        let mut queue: VecDeque<(usize, &TrainConfig)> = runs
            .iter()
            .enumerate()
            .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k))
            .collect();
        let (multi, overall, epoch_bar) = (&self.multi, &self.overall, &self.epoch_bar);
        overall.inc_length(queue.len() as u64);
        let note = |msg: String| self.note(msg);
        let loaded = &mut state.loaded;
        let (mut ran, mut skipped, mut failed) = (0, 0, 0);
        let total = runs.len();
        let (git_commit, crate_versions, cpu_model, cores) = (
            &self.git_commit,
            &self.crate_versions,
            &self.cpu_model,
            self.cores,
        );
        // Runs put back in a row because another process holds their lease, and those announced.
        let mut deferred = 0;
        let mut waiting_for = std::collections::HashSet::new();
        // Runs that take turns by epoch (alone only: a data-parallel job's other processes
        // follow the runs in order), and those this stage paused itself.
        let take_turns = sweep.order == RunOrder::Interleaved && procs == 1;
        let mut paused = std::collections::HashSet::new();
        while let Some((i, cfg)) = queue.pop_front() {
            if stop.load(Ordering::Relaxed) && procs == 1 {
                multi.clear().ok();
                return Ok(false);
            }
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
            let label = format!(
                "{what} {}/{total} {} {} seed {}",
                i + 1,
                cfg.model,
                cfg.optimizer_label(),
                cfg.hyper.seed
            );
            let run_meta = RunMeta {
                run_key: key.clone(),
                model: cfg.model.clone(),
                dataset: cfg.dataset.clone(),
                optimizer: cfg.optimizer,
                samples: cfg.samples(),
                seed: cfg.hyper.seed,
                hyper_json: crate::train::settings_json(cfg),
                git_commit: git_commit.clone(),
                crate_versions: crate_versions.clone(),
                cpu_model: cpu_model.clone(),
                threads: opts.threads,
                device: crate::device::describe(&opts.device),
                cores,
                processes: procs,
                comm_strategy: comm_strategy(cfg.optimizer, &cfg.hyper, procs).into(),
            };
            // Another sweep over this store may have finished the run, or be training it.
            let claimed = match store.start_run(Some(sweep_id), &run_meta)? {
                None => None,
                Some(run) => claim(store, run, opts)?.then_some(run),
            };
            let Some(run) = claimed else {
                anyhow::ensure!(
                    procs == 1,
                    "{label}: another process is training this run; a data-parallel sweep needs the store to itself"
                );
                if store
                    .find_run(sweep_id, &key)?
                    .is_some_and(|r| r.status.is_done())
                {
                    skipped += 1;
                    overall.inc(1);
                    continue;
                }
                if waiting_for.insert(i) {
                    note(format!(
                        "{label}: another process is training it; coming back to it"
                    ));
                }
                queue.push_back((i, cfg));
                deferred += 1;
                if deferred >= queue.len() {
                    // Every run left is held elsewhere: wait for one to finish or its lease to lapse.
                    std::thread::sleep(Duration::from_secs_f64(
                        (opts.lease_seconds / 4.0).min(2.0),
                    ));
                    deferred = 0;
                }
                continue;
            };
            deferred = 0;
            if !loaded.contains_key(&cfg.dataset) {
                data::obtain(&cfg.dataset, &opts.data_dir)?;
                let splits = data::load(&cfg.dataset, &opts.data_dir)?;
                loaded.insert(cfg.dataset.clone(), splits);
            }
            let splits = &loaded[&cfg.dataset];
            overall.set_message(label.clone());
            epoch_bar.set_prefix(label.clone());
            if procs > 1 {
                // The data is on disk now, and the followers learn where the checkpoints go.
                share(comm, Some(run as f64));
            }
            let checkpoints = checkpoints_of(opts, sweep, run);
            let lost = AtomicBool::new(false);
            let training = AtomicBool::new(true);
            let result = std::thread::scope(|s| {
                s.spawn(|| hold_lease(run, opts, &training, &lost));
                let mut rec = Recorder {
                    store,
                    run,
                    checkpoints: &checkpoints,
                    stop,
                    lost: &lost,
                    bar: epoch_bar,
                    buffer: Vec::new(),
                    output: opts.output,
                    label: &label,
                    epochs: cfg.epochs,
                    cores,
                    take_turns,
                };
                let result = (|| -> Result<Outcome> {
                    let device = opts.device.clone();
                    let (net, mut opt) = build_run(cfg, splits, &device, opts.comm.clone())?;
                    let restored = checkpoints.load(&net, opt.as_mut())?;
                    for why in &restored.damaged {
                        note(format!("{label}: {why}"));
                    }
                    if !restored.damaged.is_empty() && restored.progress.is_none() {
                        note(format!(
                            "{label}: no usable checkpoint; starting the run again"
                        ));
                    }
                    let progress = restored.progress.unwrap_or_default();
                    if procs > 1 {
                        // Every process must resume from the same step (a shared results folder).
                        share(comm, Some(progress.step as f64));
                    }
                    if progress.step > 0 && !paused.contains(&i) {
                        note(format!("{label}: resuming at step {}", progress.step));
                    }
                    store.truncate_run(run, progress.step, progress.epochs.len())?;
                    let learner = Learner {
                        net: &net,
                        opt: opt.as_mut(),
                        device: &device,
                        comm,
                    };
                    let summary = train(cfg, splits, learner, &mut rec, progress)?;
                    rec.flush()?;
                    Ok(summary.outcome)
                })();
                training.store(false, Ordering::Relaxed);
                result
            });
            ran += 1;
            // One line per finished run where no bar shows it.
            let run_line = |what: String| {
                if matches!(opts.output, Output::Lines | Output::Quiet) {
                    say!("{label}: {what}");
                }
            };
            match result {
                Ok(Outcome::Finished) => {
                    store.end_run(run, Status::Finished, None)?;
                    checkpoints.clear()?;
                    let epochs = store.epochs(run)?;
                    let last = epochs.last();
                    run_line(format!(
                        "finished, test acc {} after {} epoch(s), {} training",
                        last.map_or("-".into(), |e| format!("{:.2}%", 100.0 * e.test_accuracy)),
                        epochs.len(),
                        duration(last.map_or(0.0, |e| e.wall_seconds))
                    ));
                }
                Ok(Outcome::Diverged { step, loss }) => {
                    let why = format!("diverged at step {step} (loss {loss})");
                    note(format!("{label}: {why}"));
                    store.end_run(run, Status::Diverged, Some(&why))?;
                    checkpoints.clear()?;
                    run_line(why);
                }
                Ok(Outcome::Interrupted { step }) if lost.load(Ordering::Relaxed) => {
                    note(format!(
                        "{label}: another process took this run over at step {step}; leaving it to it"
                    ));
                    ran -= 1;
                    overall.inc(1);
                    continue;
                }
                Ok(Outcome::Paused { .. }) => {
                    // Its turn is over: the next run's epoch comes first.
                    ran -= 1;
                    store.release_run(run, &opts.owner)?;
                    paused.insert(i);
                    queue.push_back((i, cfg));
                    continue;
                }
                Ok(Outcome::Interrupted { step }) => {
                    store.release_run(run, &opts.owner)?;
                    note(format!(
                        "{label}: interrupted after step {step}; checkpointed"
                    ));
                    multi.clear().ok();
                    return Ok(false);
                }
                Err(e) if disk_full(&e) => {
                    // Every later run would fail alike: stop here, the run resumable.
                    let _ = store.release_run(run, &opts.owner);
                    multi.clear().ok();
                    return Err(e.context(format!(
                        "{label}: the disk is full; the store and the last good checkpoint are intact: free some space and run the same command again to resume"
                    )));
                }
                Err(e) => {
                    if stop.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    failed += 1;
                    let why = format!("{e:#}");
                    store.end_run(run, Status::Failed, Some(&why))?;
                    // Once: plain-line output has its run line, bars and workers the note.
                    if matches!(opts.output, Output::Lines | Output::Quiet) {
                        run_line(format!("failed: {why}"));
                    } else {
                        note(format!("{label}: failed: {why}"));
                    }
                    if procs > 1 {
                        // The other processes may be mid-step, waiting for this one: end the job
                        // (the run is recorded; started again, the sweep retries it).
                        note("ending the data-parallel job: a run failed on process 0".into());
                        comm.abort(1);
                    }
                }
            }
            store.release_run(run, &opts.owner)?;
            overall.inc(1);
        }
        state.ran += ran;
        state.skipped += skipped;
        state.failed += failed;
        Ok(true)
    }
}

/// Takes the lease on `run`: free, expired, or held by a process of this machine that has
/// died (so a sweep restarted after a kill goes on at once, without waiting for the lease).
fn claim(store: &Store, run: i64, opts: &SweepOptions) -> Result<bool> {
    if store.claim_run(run, &opts.owner, opts.lease_seconds)? {
        return Ok(true);
    }
    match store.lease_holder(run)? {
        Some(holder) if holder_is_dead(&holder) => {
            Ok(store.take_over_run(run, &holder, &opts.owner, opts.lease_seconds)?)
        }
        _ => Ok(false),
    }
}

/// Whether `holder` ([`lease_owner`]'s `host:pid:start`) names a process of this machine that
/// no longer runs.
fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) else {
        return false;
    };
    // Gone, or a zombie: killed, and not yet reaped by whoever inherited it.
    let running = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    host == hostname() && !running
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Renews this process's lease on `run` while `training` is set; sets `lost` (and stops) when
/// another process holds it now.
fn hold_lease(run: i64, opts: &SweepOptions, training: &AtomicBool, lost: &AtomicBool) {
    // A connection of its own: the training thread's is not to be shared.
    let store = match Store::open(&opts.db) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot renew the run's lease; it lapses in {} s", opts.lease_seconds);
            return;
        }
    };
    let every = Duration::from_secs_f64(opts.lease_seconds / 4.0);
    let mut last = Instant::now();
    while training.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(every));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        // A store busy past its timeout is retried at the next beat.
        if let Ok(false) = store.renew_lease(run, &opts.owner, opts.lease_seconds) {
            lost.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Whether `e` comes from a full disk (the store's or the checkpoints').
pub fn disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Full { .. })
        ) || c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
            || c.to_string().contains("No space left on device")
    })
}

/// Who holds a lease: `host:pid:start`, unique per process.
pub fn lease_owner() -> String {
    let host = hostname();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}:{}:{start}", std::process::id())
}
