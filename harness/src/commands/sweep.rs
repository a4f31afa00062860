//! `skfac sweep`: every run of a sweep file into the results store; started again, it skips
//! finished runs and resumes an interrupted one from its last checkpoint.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::console::{say, Output};
use crate::device::{self, DeviceSpec};
use crate::job::Job;
use crate::store::Store;
use crate::sweep::processes::{self, SweepTarget};
use crate::sweep::{self, Sweep, SweepOutcome};

#[derive(clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub target: SweepTarget,
    /// Threads per run [default: all cores divided among the jobs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N [default: the sweep file's `device`, else cpu]; CUDA needs
    /// `just build-cuda`.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Runs at a time, each in its own process.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Train every run data-parallel on P processes of this machine (`mpirun -np P`; needs a
    /// build with `--features mpi`). On a cluster, start `mpirun ... skfac sweep FILE` yourself.
    #[arg(long, value_name = "P")]
    pub mpi: Option<usize>,
    /// Print only one line per finished run.
    #[arg(long)]
    pub quiet: bool,
    /// How long a run stays reserved to this process without a renewal (it renews every
    /// quarter of it): after a crash, another sweep takes the run over once this has passed.
    #[arg(long, default_value_t = 60.0, hide = true)]
    pub lease_seconds: f64,
    /// Internal: this process is worker K of N (`K/N`) of a `--jobs N` sweep.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
}

/// Set by Ctrl-C (or SIGTERM): the running step finishes, the run checkpoints, and the sweep
/// exits; started again, it resumes.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(args: &SweepArgs, job: &Job) -> Result<()> {
    let target = &args.target;
    let spec = sweep::load(&target.file)?;
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(
        args.lease_seconds.is_finite() && args.lease_seconds >= 1.0,
        "--lease-seconds must be at least 1"
    );
    anyhow::ensure!(
        args.mpi.is_none_or(|p| p >= 1),
        "--mpi takes the number of processes, at least 1"
    );
    anyhow::ensure!(
        args.jobs == 1 || (job.size() == 1 && args.mpi.is_none_or(|p| p == 1)),
        "--jobs runs several runs at once, --mpi runs each on several processes: use one of them"
    );
    anyhow::ensure!(
        spec.search.is_none() || (job.size() == 1 && args.mpi.is_none_or(|p| p == 1)),
        "{}: a sweep with [search] runs without --mpi (its trials are picked between two stages that a data-parallel job does not share); use --jobs, or run the search alone first",
        target.file.display()
    );
    if job.size() == 1 && args.mpi.is_some_and(|p| p > 1) {
        return processes::under_mpirun(
            target,
            args.mpi.unwrap_or(1),
            args.threads,
            &forwarded(args),
        );
    }
    let cores = crate::train::machine_load::cores();
    let per_process = (cores / crate::job::local_size().max(args.jobs)).max(1);
    let threads = args.threads.unwrap_or(per_process);
    ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    if job.size() > 1 {
        // Checked on every process before any collective call, so all of them stop alike.
        let uneven: Vec<String> = spec
            .runs
            .iter()
            .filter(|r| !r.batch_size.is_multiple_of(job.size()))
            .map(|r| format!("{} (batch {})", r.optimizer_label(), r.batch_size))
            .collect();
        anyhow::ensure!(
            uneven.is_empty(),
            "{}: the batch size of {} does not split evenly over {} processes: use a batch_size that is a multiple of {}",
            target.file.display(),
            uneven.join(", "),
            job.size(),
            job.size()
        );
    }
    if args.jobs > 1 && args.worker.is_none() {
        let ok =
            processes::run_workers(target, &spec, args.jobs, threads, &forwarded(args), &STOP)?;
        print_table(&target.db, &spec.name)?;
        anyhow::ensure!(ok, "a sweep worker failed; see its messages above");
        return Ok(());
    }
    let shard = match &args.worker {
        Some(w) => Some(
            w.split_once('/')
                .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)))
                .filter(|&(k, n): &(usize, usize)| k < n)
                .context("--worker takes K/N with K < N")?,
        ),
        None => None,
    };
    crate::threads::configure(Some(threads))?;
    // `--jobs` workers side by side take a GPU each (`device = "cuda"`), as MPI ranks do.
    let device = match shard {
        Some((k, _)) => args.device.unwrap_or(spec.device).open_slot(k)?,
        None => args.device.unwrap_or(spec.device).open()?,
    };
    let opts = sweep::SweepOptions {
        db: target.db.clone(),
        data_dir: target.data_dir.clone(),
        results: target.results.clone(),
        threads,
        device: device.clone(),
        shard,
        output: match Output::detect(args.quiet) {
            // The other processes of a data-parallel job, and `--jobs` workers under the
            // parent's bar, print nothing.
            _ if job.rank() != 0 => Output::Silent,
            Output::Bars if shard.is_some() => Output::Silent,
            o => o,
        },
        comm: job.comm.clone(),
        owner: sweep::lease_owner(),
        lease_seconds: args.lease_seconds,
    };
    if job.rank() != 0 {
        return sweep::follow_sweep(&spec, &opts, &STOP);
    }
    if shard.is_none() {
        let processes = if job.size() > 1 {
            format!("each on {} processes × ", job.size())
        } else {
            String::new()
        };
        let trials = spec.search.as_ref().map_or(String::new(), |s| {
            format!(
                "{} search trials ({} epoch(s) each, picked by validation accuracy), then ",
                s.all_trials().count(),
                s.epochs
            )
        });
        say!(
            "sweep {}: {trials}{} runs, {processes}{threads} thread(s), device {}, results in {}",
            spec.name,
            spec.runs.len(),
            device::describe(&device),
            target.db.display()
        );
    }
    let outcome = sweep::run_sweep(&spec, &opts, &STOP)?;
    finish(&target.db, &spec, outcome, shard.is_some())
}

/// The flags the processes a sweep starts (`--jobs` workers, `--mpi`) must get too.
fn forwarded(args: &SweepArgs) -> Vec<String> {
    let mut v = vec![
        "--lease-seconds".to_string(),
        args.lease_seconds.to_string(),
    ];
    if args.quiet {
        v.push("--quiet".into());
    }
    if let Some(d) = args.device {
        v.extend(["--device".into(), d.to_string()]);
    }
    v
}

/// Reports how a sweep (or one worker's share of it) ended.
fn finish(db: &Path, spec: &Sweep, outcome: SweepOutcome, worker: bool) -> Result<()> {
    match outcome {
        SweepOutcome::Interrupted => {
            say!("interrupted; run the same command again to resume");
            std::process::exit(130);
        }
        SweepOutcome::Done { .. } if worker => Ok(()),
        SweepOutcome::Done {
            ran,
            skipped,
            failed,
        } => {
            say!(
                "sweep {}: {ran} run(s) ran, {skipped} already done, {failed} failed",
                spec.name
            );
            print_table(db, &spec.name)?;
            anyhow::ensure!(
                failed == 0,
                "{failed} run(s) failed; their errors are in {}",
                db.display()
            );
            Ok(())
        }
    }
}

/// The runs of a sweep and their final test accuracy.
fn print_table(db: &Path, sweep: &str) -> Result<()> {
    let store = Store::open(db)?;
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
