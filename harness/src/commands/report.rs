//! `skfac report`: a sweep's figures and tables from the results store.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::console::say;
use crate::store::{self, Store};
use crate::sweep::search::{self, SEARCH_SUFFIX};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[arg(long, default_value = store::DEFAULT_DB)]
    pub db: PathBuf,
    /// The sweep to report [default: every sweep in the database].
    #[arg(long)]
    pub sweep: Option<String>,
    /// Folder for the files. With --sweep they go straight into it; without, each sweep
    /// gets a subfolder [default: results/reports/SWEEP]. The performance profile across
    /// the store's workloads goes into its `performance-profile` subfolder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where the performance profile goes, under `--out` or the reports folder.
pub const PROFILE_DIR: &str = "performance-profile";

pub fn run(args: &ReportArgs) -> Result<()> {
    let db = &args.db;
    anyhow::ensure!(
        db.exists(),
        "{}: no such database; run a sweep first (`just sweep NAME`), or pass --db",
        db.display()
    );
    let store = Store::open(db)?;
    // A search's trials are reported with the sweep they served.
    let timed: Vec<String> = store
        .sweep_names()?
        .into_iter()
        .filter(|n| !n.ends_with(SEARCH_SUFFIX))
        .collect();
    let names = match &args.sweep {
        Some(s) => vec![s.clone()],
        None => timed.clone(),
    };
    anyhow::ensure!(!names.is_empty(), "{}: holds no sweeps yet", db.display());
    // Every sweep read here, for the profile across them.
    let mut read = Vec::new();
    for name in &names {
        let mut results = store.sweep_results(name)?.with_context(|| {
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
        results.search = search::trial_table(&store, name)?;
        let dir = match (&args.out, &args.sweep) {
            (Some(o), Some(_)) => o.clone(),
            (Some(o), None) => o.join(name),
            (None, _) => PathBuf::from("results/reports").join(name),
        };
        let written = reports::write_report(&results, &dir);
        read.push(results);
        let written = match written {
            // Reporting every sweep: one that has not finished an epoch yet is skipped.
            Err(e @ reports::ReportError::Empty(_)) if args.sweep.is_none() => {
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
    // Across every sweep of the store, whichever one was asked for; each read once.
    let mut all = Vec::with_capacity(timed.len());
    for name in &timed {
        match read.iter().position(|r| &r.name == name) {
            Some(i) => all.push(read.swap_remove(i)),
            None => all.extend(store.sweep_results(name)?),
        }
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/reports"))
        .join(PROFILE_DIR);
    if let Some(written) = reports::write_profile(&all, &dir)? {
        say!(
            "performance profile over the store's workloads: wrote {} files to {} (open profile.html)",
            written.files.len(),
            dir.display()
        );
    }
    Ok(())
}
