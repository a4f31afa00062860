//! `skfac regress`: picks the baseline benchmark record and compares the newest one with it.

use anyhow::Result;
use reports::regress::{compare, render, BenchRecord};

/// The records cannot be compared (no records, no baseline, no shared ratio): an error of its
/// own, so that `skfac regress` exits with status 2 here and 1 only on a regression.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotCompare(pub String);

/// Which record the newest one is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The record before the newest.
    Previous,
    /// The newest record (other than the newest itself) whose commit carries a git tag.
    LatestTagged,
    /// The newest record of a commit starting with this prefix.
    Commit(String),
}

impl Baseline {
    pub fn parse(s: &str) -> Baseline {
        match s {
            "previous" => Baseline::Previous,
            "latest-tagged" => Baseline::LatestTagged,
            c => Baseline::Commit(c.to_string()),
        }
    }
}

/// `10%` or `0.1` as the fraction 0.1.
pub fn parse_tolerance(s: &str) -> Result<f64, String> {
    let (num, per) = match s.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v / per),
        _ => Err(format!("`{s}` is not a tolerance; write e.g. 10% or 0.1")),
    }
}

/// Tags of a record: those recorded with it, and those git knows of its commit now.
fn tags(r: &BenchRecord, git_tags: &dyn Fn(&str) -> Option<Vec<String>>) -> Vec<String> {
    let mut t = r.tags.clone();
    for g in git_tags(&r.git_commit).unwrap_or_default() {
        if !t.contains(&g) {
            t.push(g);
        }
    }
    t
}

/// The newest record and its baseline among `records` (oldest first). Only records of the
/// same model, batch, thread count and periods as the newest are comparable.
pub fn select<'a>(
    records: &'a [BenchRecord],
    baseline: &Baseline,
    git_tags: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<(&'a BenchRecord, BenchRecord)> {
    let Some(current) = records.last() else {
        return Err(CannotCompare(
            "the database holds no benchmark records: run `skfac bench-gains` first".into(),
        )
        .into());
    };
    // Ratios depend on the shapes, the device and thread count (the inverse stages most) and
    // the periods the stages are amortised over.
    let older: Vec<&BenchRecord> = records[..records.len() - 1]
        .iter()
        .filter(|r| {
            r.model == current.model
                && r.batch == current.batch
                && r.threads == current.threads
                && r.device == current.device
                && (r.t_cov, r.t_inv) == (current.t_cov, current.t_inv)
        })
        .collect();
    let found = match baseline {
        Baseline::Previous => older.last().copied(),
        Baseline::LatestTagged => older
            .iter()
            .rev()
            .find(|r| !tags(r, git_tags).is_empty())
            .copied(),
        Baseline::Commit(c) => older
            .iter()
            .rev()
            .find(|r| r.git_commit.starts_with(c.as_str()))
            .copied(),
    };
    match found {
        Some(b) => {
            let mut b = b.clone();
            b.tags = tags(&b, git_tags);
            Ok((current, b))
        }
        None => Err(CannotCompare(format!(
            "no baseline record ({}) of {} at batch {} on {}, {} thread(s) with T_cov {} and T_inv {} older than record {}: run `skfac bench-gains` with the same settings on the baseline commit, or pass --baseline previous",
            match baseline {
                Baseline::Previous => "previous".to_string(),
                Baseline::LatestTagged => "latest-tagged".to_string(),
                Baseline::Commit(c) => format!("commit {c}"),
            },
            current.model,
            current.batch,
            current.device,
            current.threads,
            current.t_cov,
            current.t_inv,
            current.id
        ))
        .into()),
    }
}

/// The comparison as text, and whether any ratio regressed beyond `tolerance`.
pub fn report(
    records: &[BenchRecord],
    baseline: &Baseline,
    tolerance: f64,
    git_tags: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<(String, bool)> {
    let (current, base) = select(records, baseline, git_tags)?;
    let rows = compare(&base, current, tolerance);
    if rows.is_empty() {
        return Err(CannotCompare(format!(
            "records {} and {} share no ratio (different optimizers?)",
            base.id, current.id
        ))
        .into());
    }
    let regressed = rows.iter().filter(|r| r.regressed).count();
    let mut text = render(&base, current, &rows, tolerance);
    text.push_str(&if regressed > 0 {
        format!(
            "\n{regressed} ratio(s) regressed by more than {:.1}%\n",
            100.0 * tolerance
        )
    } else {
        format!(
            "\nno ratio regressed by more than {:.1}%\n",
            100.0 * tolerance
        )
    });
    Ok((text, regressed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_parse_as_fractions() {
        assert_eq!(parse_tolerance("10%"), Ok(0.1));
        assert_eq!(parse_tolerance("0.25"), Ok(0.25));
        assert!(parse_tolerance("-1%").is_err());
        assert!(parse_tolerance("ten").is_err());
    }
}
