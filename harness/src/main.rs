//! `skfac`: obtain data, train models with SGD, Adam and the K-FAC family, run sweeps, report
//! and benchmark. This file is the command line; each command's body is in
//! `harness::commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::commands::{bench, data, report, sweep, train};
use harness::job::Job;

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
    Data(data::DataArgs),
    /// Train one model with one optimizer, evaluating on the test split after each epoch.
    Train(Box<train::TrainArgs>),
    /// Run every combination of a sweep file into the results store; started again, it skips
    /// finished runs and resumes an interrupted one from its last checkpoint.
    Sweep(sweep::SweepArgs),
    /// Write a sweep's report from the results store: convergence plots, the time-to-target
    /// table, stage-time shares, report.md and report.html.
    Report(report::ReportArgs),
    /// Time every optimizer's training step on fixed shapes and store the per-stage means with
    /// the git commit, for `skfac regress`.
    BenchGains(bench::BenchGainsArgs),
    /// Compare the newest `bench-gains` record with a baseline on ratios between optimizers;
    /// exits with status 1 when a ratio got worse by more than the tolerance.
    Regress(bench::RegressArgs),
    /// Time training steps on a random batch; the last line is `N img/s` (median step).
    BenchStep(bench::BenchStepArgs),
    /// Time a damped inverse of an n×n statistic on the device against a round trip to the
    /// host, for a range of sizes, and check the two agree.
    BenchInverse(bench::BenchInverseArgs),
}

fn run(cli: Cli, job: &Job) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(a) => data::run(&a),
        Command::Train(a) => train::run(&a, job),
        Command::Sweep(a) => sweep::run(&a, job),
        Command::Report(a) => report::run(&a),
        Command::BenchGains(a) => bench::gains(&a),
        Command::Regress(a) => bench::regress(&a),
        Command::BenchStep(a) => bench::step(&a),
        Command::BenchInverse(a) => bench::inverse(&a),
    }
}

/// See `harness::alloc`: glibc's malloc made every step fault its tensors' pages in afresh.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let job = match harness::job::join() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli, &job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<bench::Regressed>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            if job.size() > 1 {
                // The other processes may be waiting in a collective call for this one.
                job.comm.abort(1);
            }
            let cannot_compare = e.is::<harness::bench::regress::CannotCompare>();
            ExitCode::from(if cannot_compare { 2 } else { 1 })
        }
    }
}
