//! Writes every artefact of a sweep's report into one folder: figures (PNG and SVG), the
//! time-to-target and stage-time tables (Markdown and CSV), `report.md` and `report.html`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::busy::{probe_reference, rule_text, slow_rule_text, slowdown, MachineLoad};
use crate::data::{SweepResults, STAGES};
use crate::document::{Block, Document};
use crate::format;
use crate::plot::{self, XAxis};
use crate::profile::{self as perf, TAU_MAX};
use crate::search::{search_table, timed_setting};
use crate::series::{dataset_name, groups, model_name, Group};
use crate::stages::{stage_rows, StageRow};
use crate::target::{target_rows, TargetRow};
use crate::ReportError;

/// The files a report wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

fn write(out: &Path, name: &str, bytes: &[u8], written: &mut Written) -> Result<(), ReportError> {
    let path = out.join(name);
    std::fs::write(&path, bytes).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    written.files.push(path);
    Ok(())
}

/// The most common value of `f` over the runs, with how many other values there were.
fn common<'a>(
    sweep: &'a SweepResults,
    f: impl Fn(&'a crate::RunResult) -> String,
) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &sweep.runs {
        *counts.entry(f(r)).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// `Intel Xeon ..., 2 threads` (or the GPU, `cuda:0 (NVIDIA H200)`) for figure titles: the
/// hardware most runs used.
fn hardware(sweep: &SweepResults) -> String {
    let cpu = common(sweep, |r| r.cpu_model.clone());
    let threads = common(sweep, |r| r.threads.to_string());
    let procs = common(sweep, |r| r.processes.to_string());
    let device = common(sweep, |r| r.device.clone());
    let mut s = format::hardware(
        device.first().map_or("cpu", |d| d.0.as_str()),
        cpu.first().map_or("unknown CPU", |c| c.0.as_str()),
        threads.first().map_or("?", |t| t.0.as_str()),
    );
    if let Some((p, _)) = procs.first().filter(|p| p.0 != "1") {
        s.push_str(&format!(" × {p} processes"));
    }
    s
}

/// The time-to-target table; a final validation accuracy column where a run held out a
/// validation split, and the setting each row was timed with where a search chose them.
fn target_table(rows: &[TargetRow], target: f64, settings: Option<&[String]>) -> Block {
    let validation = rows.iter().any(|r| r.final_validation.is_some());
    let mut header = vec![
        "optimizer".to_string(),
        format!("epochs to {}", format::percent(target)),
        "time (min)".into(),
        "time gap vs K-FAC".into(),
        "final test accuracy".into(),
    ];
    if validation {
        header.push("final validation accuracy".into());
    }
    if settings.is_some() {
        header.push("setting (searched)".into());
    }
    let rows = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let partial = if r.reached > 0 && r.reached < r.runs {
                format!(" ({}/{} seeds)", r.reached, r.runs)
            } else {
                String::new()
            };
            let dagger = if r.load.flagged() { " †" } else { "" };
            let (epochs, minutes) = match (r.epochs, r.minutes) {
                (Some(e), Some(m)) => (
                    format!("{}{partial}", format::epochs(e)),
                    format!("{m:.2}{dagger}"),
                ),
                _ => ("not reached".into(), format!("not reached{dagger}")),
            };
            let final_acc = match r.final_accuracy {
                Some(a) => format::percent(a),
                None if r.diverged > 0 => "diverged".into(),
                None => "—".into(),
            };
            let mut row = vec![
                r.label.clone(),
                epochs,
                minutes,
                r.gap.map_or("—".into(), format::gap),
                final_acc,
            ];
            if validation {
                row.push(r.final_validation.map_or("—".into(), format::percent));
            }
            if let Some(s) = settings {
                row.push(s[i].clone());
            }
            row
        })
        .collect();
    Block::Table { header, rows }
}

/// The note under the time-to-target table for each row timed on a busy or slowed machine.
fn busy_notes(rows: &[TargetRow]) -> Vec<Block> {
    rows.iter()
        .filter(|r| r.load.flagged())
        .map(|r| {
            Block::Paragraph(format!(
                "† {}: timed on a busy or slowed machine ({} during its epochs): its time is not comparable.",
                r.label,
                r.load.describe().unwrap_or_default()
            ))
        })
        .collect()
}

/// The speed probe's verdict on `group`: its median and every epoch it flags as run on a
/// slowed machine, by name; `None` without probe data.
fn slowed_epochs(group: &Group) -> Option<Block> {
    let reference = probe_reference(group.runs())?;
    let flagged: Vec<String> = group
        .series
        .iter()
        .flat_map(|s| {
            s.runs.iter().flat_map(move |r| {
                r.epochs.iter().filter_map(move |e| {
                    slowdown(e, Some(reference)).map(|x| {
                        format!("{} seed {} epoch {} ({x:.2}×)", s.label(), r.seed, e.epoch)
                    })
                })
            })
        })
        .collect();
    let verdict = if flagged.is_empty() {
        "no epoch was flagged".to_string()
    } else {
        format!("flagged: {}", flagged.join("; "))
    };
    Some(Block::Paragraph(format!(
        "Machine speed: a fixed CPU workload timed before every epoch took {:.1} ms (median over \
         this workload's epochs); an epoch counts as slowed when its {}: {verdict}.",
        1e3 * reference,
        slow_rule_text()
    )))
}

/// `SGD seed 0` for each run of `group` that trained on a busy or slowed machine in any
/// epoch, with its highest load and slowdown.
fn busy_runs(group: &Group) -> Vec<String> {
    let reference = probe_reference(group.runs());
    group
        .series
        .iter()
        .flat_map(|s| {
            s.runs.iter().filter_map(move |r| {
                let load = MachineLoad::of(r, &r.epochs, reference);
                load.flagged().then(|| {
                    format!(
                        "{} seed {} ({})",
                        s.label(),
                        r.seed,
                        load.describe().unwrap_or_default()
                    )
                })
            })
        })
        .collect()
}

fn stage_tables(rows: &[StageRow]) -> [Block; 2] {
    let mut header = vec!["optimizer".to_string()];
    header.extend(STAGES.iter().map(|s| s.to_string()));
    header.push("step".into());
    let ms = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.label.clone()];
            v.extend(r.seconds.iter().map(|s| format::millis(*s)));
            v.push(format::millis(r.total()));
            v
        })
        .collect();
    let mut share_header = header.clone();
    share_header.pop();
    let shares = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.label.clone()];
            v.extend(r.shares().iter().map(|s| format!("{:.1}%", 100.0 * s)));
            v
        })
        .collect();
    [
        Block::Table { header, rows: ms },
        Block::Table {
            header: share_header,
            rows: shares,
        },
    ]
}

/// For data-parallel runs: what each process sent and how long it spent in the collectives,
/// averaged over the series' runs.
fn comm_table(group: &Group) -> Option<Block> {
    let rows: Vec<Vec<String>> = group
        .series
        .iter()
        .filter_map(|s| {
            let runs: Vec<_> = s
                .runs
                .iter()
                .filter(|r| r.processes > 1)
                .filter_map(|r| r.comm.map(|c| (r, c)))
                .collect();
            let first = runs.first()?;
            let n = runs.len() as f64;
            let mean =
                |f: fn(&crate::CommMeans) -> f64| runs.iter().map(|(_, c)| f(c)).sum::<f64>() / n;
            let refreshed = runs.iter().any(|(_, c)| c.statistics_steps > 0);
            let or_dash = |v: String| if refreshed { v } else { "—".into() };
            let shared = runs.iter().any(|(_, c)| c.inverse_steps > 0);
            let if_shared = |v: String| if shared { v } else { "—".into() };
            Some(vec![
                s.label(),
                first.0.processes.to_string(),
                first.0.comm_strategy.clone(),
                format!(
                    "{} ({})",
                    format::millis(mean(|c| c.gradient_seconds)),
                    format::millis(mean(|c| c.gradient_wait_seconds))
                ),
                format!("{:.3}", mean(|c| c.gradient_bytes) / 1e6),
                or_dash(format!(
                    "{} ({})",
                    format::millis(mean(|c| c.statistics_seconds)),
                    format::millis(mean(|c| c.statistics_wait_seconds))
                )),
                or_dash(format!("{:.3}", mean(|c| c.statistics_bytes) / 1e6)),
                if_shared(format!(
                    "{} ({})",
                    format::millis(mean(|c| c.inverse_seconds)),
                    format::millis(mean(|c| c.inverse_wait_seconds))
                )),
                if_shared(format!("{:.3}", mean(|c| c.inverse_bytes) / 1e6)),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| Block::Table {
        header: [
            "optimizer",
            "processes",
            "exchange",
            "gradient all-reduce ms/step (waiting)",
            "gradient MB/step",
            "statistics exchange ms/refresh (waiting)",
            "statistics MB/refresh",
            "inverse sharing ms/refresh (waiting)",
            "inverse MB/refresh",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x}"))
}

/// A prefix that keeps several (model, dataset) groups' files apart.
fn prefix(group: &Group, many: bool) -> String {
    if many {
        format!("{}-{}-", group.model, group.dataset)
    } else {
        String::new()
    }
}

/// Writes the report of `sweep` into `out` (created if missing).
pub fn write_report(sweep: &SweepResults, out: &Path) -> Result<Written, ReportError> {
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let gs = groups(sweep);
    if !gs.iter().any(|g| {
        g.series
            .iter()
            .any(|s| s.runs.iter().any(|r| !r.epochs.is_empty()))
    }) {
        return Err(ReportError::Empty(sweep.name.clone()));
    }
    let hw = hardware(sweep);
    let mut w = Written::default();
    let mut doc = Document {
        title: format!("Sweep `{}`", sweep.name),
        blocks: Vec::new(),
    };
    doc.blocks.push(Block::Paragraph(format!(
        "Generated by `skfac report` from the results store. Times are training seconds, \
         evaluation excluded; lines are means over seeds with the min-max band shaded where \
         there are several. Hardware: {hw}."
    )));
    let mut target_csv = String::from(
        "model,dataset,optimizer,samples,label,runs,reached,diverged,epochs,minutes,gap_vs_kfac,final_test_accuracy,busy,max_load_average,cpu_share,final_validation_accuracy,slowed_epochs\n",
    );
    let mut stage_csv = String::from("model,dataset,optimizer,label,steps");
    for s in STAGES {
        stage_csv.push_str(&format!(",{s}_seconds"));
    }
    stage_csv.push_str(",step_seconds\n");
    let mut target_md = String::new();
    let many = gs.len() > 1;
    for g in &gs {
        let name = format!("{} on {}", model_name(g.model), dataset_name(g.dataset));
        let p = prefix(g, many);
        doc.blocks.push(Block::Heading(1, name.clone()));

        if let Some(target) = sweep.target {
            let rows = target_rows(g, target);
            let settings: Option<Vec<String>> = (!sweep.search.is_empty()).then(|| {
                rows.iter()
                    .map(|r| timed_setting(&sweep.search, g.model, r.optimizer, r.samples))
                    .collect()
            });
            let table = target_table(&rows, target, settings.as_deref());
            doc.blocks.push(Block::Heading(
                2,
                format!("Time to {} test accuracy", format::percent(target)),
            ));
            doc.blocks.push(Block::Paragraph(
                "Epochs and training minutes until the test accuracy first reached the target \
                 (means over the seeds that reached it), and the time gap relative to K-FAC as \
                 in the paper's Table 1."
                    .into(),
            ));
            let mut notes = busy_notes(&rows);
            notes.extend(slowed_epochs(g));
            let mut one = Document {
                title: format!("{name}: time to {} test accuracy", format::percent(target)),
                blocks: vec![table.clone()],
            };
            one.blocks.extend(notes.iter().cloned());
            target_md.push_str(&one.to_markdown());
            target_md.push('\n');
            doc.blocks.push(table);
            doc.blocks.extend(notes);
            for r in &rows {
                let fields = [
                    csv_field(g.model),
                    csv_field(g.dataset),
                    csv_field(r.optimizer.name()),
                    r.samples.map_or(String::new(), |s| s.to_string()),
                    csv_field(&r.label),
                    r.runs.to_string(),
                    r.reached.to_string(),
                    r.diverged.to_string(),
                    opt(r.epochs),
                    opt(r.minutes),
                    opt(r.gap),
                    opt(r.final_accuracy),
                    r.load.busy.to_string(),
                    opt(r.load.max_load_average),
                    opt(r.load.cpu_share()),
                    opt(r.final_validation),
                    r.load.slowed_epochs.to_string(),
                ];
                target_csv.push_str(&fields.join(","));
                target_csv.push('\n');
            }
        }

        if let Some(table) = search_table(&sweep.search, g.model) {
            doc.blocks.push(Block::Heading(2, "Search".into()));
            doc.blocks.push(Block::Paragraph(
                "Before the timed runs, each row tried these settings for the search's short \
                 budget; its timed runs took the one with the best validation accuracy at the \
                 end of it (training images held out, never the test split). A short budget \
                 favours settings that learn fast early, which need not be the best over the \
                 full run."
                    .into(),
            ));
            doc.blocks.push(table);
        }

        doc.blocks.push(Block::Heading(2, "Convergence".into()));
        for (x, file, what) in [
            (XAxis::Epochs, "convergence-epochs", "against epochs"),
            (XAxis::Minutes, "convergence-time", "against training time"),
        ] {
            let fig = plot::convergence(g, x, &format!("{name} ({hw})"))?;
            let png = format!("{p}{file}.png");
            write(out, &png, &fig.png, &mut w)?;
            write(out, &format!("{p}{file}.svg"), fig.svg.as_bytes(), &mut w)?;
            doc.blocks.push(Block::Figure {
                caption: format!("{name}: test error and training loss {what}."),
                png,
                svg: fig.svg,
            });
        }

        let rows = stage_rows(g);
        if !rows.is_empty() {
            doc.blocks.push(Block::Heading(
                2,
                "Where a training step's time goes".into(),
            ));
            let fig = plot::stage_bars(
                &rows,
                &format!("{name}: mean time per step by stage ({hw})"),
            )?;
            let png = format!("{p}stage-times.png");
            write(out, &png, &fig.png, &mut w)?;
            write(
                out,
                &format!("{p}stage-times.svg"),
                fig.svg.as_bytes(),
                &mut w,
            )?;
            doc.blocks.push(Block::Figure {
                caption: format!("{name}: mean seconds per training step in each stage, as in the paper's Fig. 3."),
                png,
                svg: fig.svg,
            });
            let [ms, shares] = stage_tables(&rows);
            doc.blocks
                .push(Block::Paragraph("Mean milliseconds per step:".into()));
            doc.blocks.push(ms);
            doc.blocks
                .push(Block::Paragraph("Share of the step:".into()));
            doc.blocks.push(shares);
            let busy = busy_runs(g);
            if !busy.is_empty() {
                doc.blocks.push(Block::Paragraph(format!(
                    "Trained on a busy or slowed machine in some epochs ({}; or its {}), so their \
                     step times are inflated: {}.",
                    rule_text(),
                    slow_rule_text(),
                    busy.join("; ")
                )));
            }
            if let Some(t) = comm_table(g) {
                doc.blocks.push(Block::Paragraph(
                    "Communication per process: time in the collective calls, with the part \
                     spent waiting for the slowest process (load imbalance) in brackets, and the \
                     bytes this process contributed:"
                        .into(),
                ));
                doc.blocks.push(t);
            }
            for r in &rows {
                stage_csv.push_str(&format!(
                    "{},{},{},{},{}",
                    csv_field(g.model),
                    csv_field(g.dataset),
                    csv_field(&r.key),
                    csv_field(&r.label),
                    r.steps
                ));
                for s in r.seconds {
                    stage_csv.push_str(&format!(",{s}"));
                }
                stage_csv.push_str(&format!(",{}\n", r.total()));
            }
        }
    }
    doc.blocks
        .push(Block::Heading(1, "Runs and hardware".into()));
    doc.blocks.push(Block::List(metadata(sweep)));

    if sweep.target.is_some() {
        write(out, "time-to-target.md", target_md.as_bytes(), &mut w)?;
        write(out, "time-to-target.csv", target_csv.as_bytes(), &mut w)?;
    }
    write(out, "stage-times.csv", stage_csv.as_bytes(), &mut w)?;
    write(out, "report.md", doc.to_markdown().as_bytes(), &mut w)?;
    write(out, "report.html", doc.to_html().as_bytes(), &mut w)?;
    Ok(w)
}

/// What made the numbers: statuses, commits, CPUs, threads, processes and crate versions.
fn metadata(sweep: &SweepResults) -> Vec<String> {
    let list = |v: Vec<(String, usize)>| {
        v.iter()
            .map(|(k, n)| format!("{k} ({n} run{})", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut items = vec![
        format!("Runs: {}", list(common(sweep, |r| r.status.clone()))),
        format!("Commits: {}", list(common(sweep, |r| r.git_commit.clone()))),
        format!("CPU: {}", list(common(sweep, |r| r.cpu_model.clone()))),
        format!("Device: {}", list(common(sweep, |r| r.device.clone()))),
        format!(
            "Threads per process: {}",
            list(common(sweep, |r| r.threads.to_string()))
        ),
        format!(
            "Processes: {}",
            list(common(sweep, |r| r.processes.to_string()))
        ),
        format!(
            "Crate versions: {}",
            list(common(sweep, |r| r.crate_versions.clone()))
        ),
    ];
    if let Some(load) = machine_load(sweep) {
        items.push(load);
    }
    if let Some(t) = sweep.target {
        items.push(format!("Target test accuracy: {}", format::percent(t)));
    }
    items
}

/// The range of the runs' highest epoch load averages and how many runs met a busy machine;
/// `None` when no run recorded its load.
fn machine_load(sweep: &SweepResults) -> Option<String> {
    let loads: Vec<MachineLoad> = sweep
        .runs
        .iter()
        .map(|r| MachineLoad::of(r, &r.epochs, None))
        .filter(|l| l.max_load_average.is_some())
        .collect();
    let highest = loads.iter().filter_map(|l| l.max_load_average);
    let (lo, hi) = highest.fold(None, |acc: Option<(f64, f64)>, x| {
        Some(acc.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
    })?;
    let busy = loads.iter().filter(|l| l.busy).count();
    let range = if format!("{lo:.1}") == format!("{hi:.1}") {
        format!("{hi:.1}")
    } else {
        format!("{lo:.1} to {hi:.1}")
    };
    Some(format!(
        "Machine load (each run's highest epoch mean of the 1-minute load average): {range}; \
         {busy} of {} run{} trained on a busy machine in some epoch ({})",
        loads.len(),
        if loads.len() == 1 { "" } else { "s" },
        rule_text()
    ))
}

/// The performance profile across the workloads of `sweeps` (`profile.md`, `.html`, `.csv`
/// and the figure) into `out`, when they hold at least two; `None` otherwise.
pub fn write_profile(sweeps: &[SweepResults], out: &Path) -> Result<Option<Written>, ReportError> {
    let workloads = perf::workloads(sweeps);
    if workloads.len() < 2 {
        return Ok(None);
    }
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let rows = perf::profile(&workloads);
    let mut w = Written::default();
    let fig = plot::profile(
        &rows,
        &format!("Performance profile over {} workloads", workloads.len()),
    )?;
    write(out, "profile.png", &fig.png, &mut w)?;
    write(out, "profile.svg", fig.svg.as_bytes(), &mut w)?;
    let listed = workloads
        .iter()
        .map(|wl| {
            format!(
                "{}: sweep `{}`, target {} test accuracy",
                wl.name(),
                wl.sweep,
                format::percent(wl.target)
            )
        })
        .collect();
    let doc = Document {
        title: "Performance profile".into(),
        blocks: vec![
            Block::Paragraph(format!(
                "As MLCommons AlgoPerf scores optimizers: for each optimizer, ρ(τ) is the share of \
                 workloads on which its time to the workload's target (training minutes, \
                 evaluation excluded, mean over seeds) is within a factor τ of the fastest \
                 optimizer's there, for τ from 1 to {TAU_MAX}. Not reaching the target, or not \
                 running the workload, counts as outside every τ. The area is the integral of ρ \
                 over [1, {TAU_MAX}] divided by {}: 1 for the fastest everywhere. Generated by \
                 `skfac report` from every sweep in the store; a model and data set in several \
                 sweeps counts once, from the last of them.",
                TAU_MAX - 1.0
            )),
            Block::Paragraph("Workloads:".into()),
            Block::List(listed),
            Block::Figure {
                caption: "ρ(τ) per optimizer: the share of workloads within τ of the fastest."
                    .into(),
                png: "profile.png".into(),
                svg: fig.svg,
            },
            perf::profile_table(&rows),
            Block::Paragraph("Time to target over the fastest optimizer's, per workload:".into()),
            perf::ratio_table(&workloads, &rows),
        ],
    };
    write(out, "profile.md", doc.to_markdown().as_bytes(), &mut w)?;
    write(out, "profile.html", doc.to_html().as_bytes(), &mut w)?;
    write(
        out,
        "profile.csv",
        perf::profile_csv(&workloads, &rows).as_bytes(),
        &mut w,
    )?;
    Ok(Some(w))
}
