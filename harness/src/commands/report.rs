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
    /// gets a subfolder [default: results/reports/SWEEP].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let db = &args.db;
    anyhow::ensure!(
        db.exists(),
        "{}: no such database; run a sweep first (`just sweep NAME`), or pass --db",
        db.display()
    );
    let store = Store::open(db)?;
    let names = match &args.sweep {
        Some(s) => vec![s.clone()],
        // A search's trials are reported with the sweep they served.
        None => store
            .sweep_names()?
            .into_iter()
            .filter(|n| !n.ends_with(SEARCH_SUFFIX))
            .collect(),
    };
    anyhow::ensure!(!names.is_empty(), "{}: holds no sweeps yet", db.display());
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
        let written = match reports::write_report(&results, &dir) {
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
    Ok(())
}
