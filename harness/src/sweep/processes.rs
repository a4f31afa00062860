//! The processes of a sweep: `--jobs N` worker processes over one store, and `--mpi P`, which
//! starts the same sweep again under `mpirun -np P`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Sweep;
use crate::console::say;
use crate::data;
use crate::store::Store;

/// What makes another `skfac` process run the same sweep into the same store.
#[derive(clap::Args, Clone, Debug)]
pub struct SweepTarget {
    /// The sweep file, e.g. sweeps/cifar10.toml.
    pub file: PathBuf,
    /// The results database.
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Runtime output folder (checkpoints go under RESULTS/checkpoints).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

impl SweepTarget {
    /// The command-line arguments that name this sweep and store.
    fn args(&self) -> [&OsStr; 8] {
        [
            "sweep".as_ref(),
            self.file.as_os_str(),
            "--db".as_ref(),
            self.db.as_os_str(),
            "--data-dir".as_ref(),
            self.data_dir.as_os_str(),
            "--results".as_ref(),
            self.results.as_os_str(),
        ]
    }
}

/// `--mpi P` on one machine (`forwarded`: more flags for the sweep): the same sweep under `mpirun -np P`. Exits with 130 when
/// mpirun reports an interruption.
pub fn under_mpirun(
    target: &SweepTarget,
    processes: usize,
    threads: Option<usize>,
    forwarded: &[String],
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the skfac executable")?;
    let mut cmd = std::process::Command::new("mpirun");
    cmd.arg("-np").arg(processes.to_string());
    let cores = crate::train::machine_load::cores();
    if processes > cores {
        // Open MPI allows one process per core unless told otherwise.
        cmd.arg("--oversubscribe");
    }
    cmd.arg(exe).args(target.args());
    if let Some(t) = threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    cmd.args(forwarded);
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

/// Makes the worker `cmd` starts receive SIGKILL when this process dies, however it dies (an
/// out-of-memory kill, a scheduler's SIGKILL): a worker must never train on, unwatched, into a
/// store that a restarted sweep uses.
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
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

/// `--jobs N`: N worker processes (`--worker K/N`) over the same store, and one progress line
/// here. Returns whether every worker succeeded; exits with 130 when `stop` was set.
pub fn run_workers(
    target: &SweepTarget,
    spec: &Sweep,
    jobs: usize,
    threads: usize,
    forwarded: &[String],
    stop: &AtomicBool,
) -> Result<bool> {
    // Created and migrated here, once: workers opening a fresh store at the same moment would
    // race for its first write lock.
    Store::open(&target.db)?;
    let mut datasets: Vec<&str> = spec.runs.iter().map(|r| r.dataset.as_str()).collect();
    datasets.dedup();
    for d in datasets {
        data::obtain(d, &target.data_dir)?;
    }
    say!(
        "sweep {}: {} runs in {jobs} jobs of {threads} thread(s), results in {}",
        spec.name,
        spec.runs.len(),
        target.db.display()
    );
    let exe = std::env::current_exe().context("cannot find the skfac executable")?;
    let mut children = Vec::new();
    for k in 0..jobs {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(target.args())
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--worker")
            .arg(format!("{k}/{jobs}"));
        cmd.args(forwarded);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().context("cannot start a sweep worker")?;
        children.push(child);
    }
    let bar = ProgressBar::new(spec.runs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} runs {pos}/{len} [{elapsed_precise}] ETA {eta}")
            .expect("valid template"),
    );
    bar.set_prefix(spec.name.clone());
    let mut ok = true;
    let mut told = false;
    loop {
        if stop.load(Ordering::Relaxed) && !told {
            // A SIGTERM reached this process alone (a Ctrl-C reaches the whole group): pass it
            // on, so every worker checkpoints and stops too.
            for c in &children {
                // SAFETY: kill(2) on our own child's pid has no memory effects.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
            told = true;
        }
        let mut running = false;
        for c in &mut children {
            match c.try_wait()? {
                None => running = true,
                Some(status) => ok &= status.success(),
            }
        }
        if let Ok(store) = Store::open(&target.db) {
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
    if stop.load(Ordering::Relaxed) {
        say!("interrupted; run the same command again to resume");
        std::process::exit(130);
    }
    Ok(ok)
}
