//! A performance profile across workloads, as MLCommons AlgoPerf scores its submissions: for
//! each optimizer configuration, ρ(τ) is the share of workloads on which its time to the target
//! is within a factor τ of the fastest configuration's there, for τ from 1 to [`TAU_MAX`]. A
//! configuration that never reached a workload's target (or did not run it) counts as outside
//! every τ. The area under ρ over [1, TAU_MAX], divided by the range's width, sums it up: 1 for
//! the fastest everywhere, 0 for never within TAU_MAX of the fastest.

use kinds::OptimizerKind;

use crate::data::SweepResults;
use crate::document::Block;
use crate::series::{dataset_name, groups, model_name, row_label};
use crate::target::target_rows;
use crate::write::csv_field;

/// The widest factor over the fastest that the profile counts.
pub const TAU_MAX: f64 = 4.0;

/// The factors the table shows ρ at.
pub const TABLE_TAUS: [f64; 5] = [1.0, 1.25, 1.5, 2.0, 4.0];

/// One optimizer configuration, as the tables name and the figures colour it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub optimizer: OptimizerKind,
    pub samples: Option<u32>,
}

impl Config {
    pub fn label(&self) -> String {
        row_label(self.optimizer, self.samples)
    }
}

/// One model on one data set, at the target of the sweep it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub model: String,
    pub dataset: String,
    pub sweep: String,
    pub target: f64,
    /// Each configuration's time to the target over the fastest's there (≥ 1); `None` where
    /// it never reached it (or no configuration did).
    pub ratios: Vec<(Config, Option<f64>)>,
}

impl Workload {
    /// `ResNet-8 on CIFAR-10`.
    pub fn name(&self) -> String {
        format!(
            "{} on {}",
            model_name(&self.model),
            dataset_name(&self.dataset)
        )
    }

    fn ratio(&self, c: &Config) -> Option<f64> {
        self.ratios.iter().find(|(k, _)| k == c).and_then(|r| r.1)
    }
}

/// The workloads of `sweeps` that have a target: one per model × data set, from the last sweep
/// that holds it.
pub fn workloads(sweeps: &[SweepResults]) -> Vec<Workload> {
    let mut out: Vec<Workload> = Vec::new();
    for sweep in sweeps {
        let Some(target) = sweep.target else { continue };
        for g in groups(sweep) {
            let rows = target_rows(&g, target);
            let fastest = rows
                .iter()
                .filter_map(|r| r.minutes)
                .filter(|m| *m > 0.0)
                .fold(f64::INFINITY, f64::min);
            let ratios = rows
                .iter()
                .map(|r| {
                    let c = Config {
                        optimizer: r.optimizer,
                        samples: r.samples,
                    };
                    let ratio = r
                        .minutes
                        .filter(|_| fastest.is_finite())
                        .map(|m| m / fastest);
                    (c, ratio)
                })
                .collect();
            let w = Workload {
                model: g.model.to_string(),
                dataset: g.dataset.to_string(),
                sweep: sweep.name.clone(),
                target,
                ratios,
            };
            match out
                .iter_mut()
                .find(|o| o.model == w.model && o.dataset == w.dataset)
            {
                Some(o) => *o = w,
                None => out.push(w),
            }
        }
    }
    out
}

/// One configuration's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    pub config: Config,
    /// ρ at each of [`TABLE_TAUS`].
    pub at: Vec<f64>,
    /// The area under ρ over [1, TAU_MAX] over the range's width, in [0, 1].
    pub area: f64,
    /// Its time ratio on each workload, in `workloads`' order.
    pub ratios: Vec<Option<f64>>,
}

/// ρ(τ) of `ratios` (one per workload): the share within τ of the fastest.
pub fn rho(ratios: &[Option<f64>], tau: f64) -> f64 {
    if ratios.is_empty() {
        return 0.0;
    }
    ratios
        .iter()
        .filter(|r| r.is_some_and(|r| r <= tau))
        .count() as f64
        / ratios.len() as f64
}

/// The exact area under the step function ρ over [1, TAU_MAX], over the width: each workload
/// within TAU_MAX at ratio r adds (TAU_MAX − r) / (TAU_MAX − 1), shared among the workloads.
pub fn area(ratios: &[Option<f64>]) -> f64 {
    if ratios.is_empty() {
        return 0.0;
    }
    // A fold from +0: an empty f64 sum is −0, which would print as "-0.000".
    let sum = ratios
        .iter()
        .flatten()
        .fold(0.0, |acc, r| acc + (TAU_MAX - r.max(1.0)).max(0.0));
    sum / ((TAU_MAX - 1.0) * ratios.len() as f64)
}

/// Every configuration that ran on any workload, in the paper's order, with its profile.
pub fn profile(workloads: &[Workload]) -> Vec<ProfileRow> {
    let mut configs: Vec<Config> = Vec::new();
    for w in workloads {
        for (c, _) in &w.ratios {
            if !configs.contains(c) {
                configs.push(c.clone());
            }
        }
    }
    configs.sort_by_key(|c| (c.optimizer, c.samples));
    configs
        .into_iter()
        .map(|config| {
            let ratios: Vec<Option<f64>> = workloads.iter().map(|w| w.ratio(&config)).collect();
            ProfileRow {
                at: TABLE_TAUS.iter().map(|&t| rho(&ratios, t)).collect(),
                area: area(&ratios),
                ratios,
                config,
            }
        })
        .collect()
}

/// The (τ, ρ) corners of a row's step function from 1 to [`TAU_MAX`], for drawing.
pub fn steps(ratios: &[Option<f64>]) -> Vec<(f64, f64)> {
    let mut at: Vec<f64> = ratios
        .iter()
        .flatten()
        .copied()
        .filter(|r| *r > 1.0 && *r <= TAU_MAX)
        .collect();
    at.sort_by(f64::total_cmp);
    let mut pts = vec![(1.0, rho(ratios, 1.0))];
    for r in at {
        let before = pts.last().expect("starts with one").1;
        pts.push((r, before));
        pts.push((r, rho(ratios, r)));
    }
    pts.push((TAU_MAX, rho(ratios, TAU_MAX)));
    pts
}

/// `1.23`, or `not reached`.
fn ratio_cell(r: Option<f64>) -> String {
    r.map_or("not reached".into(), |r| format!("{r:.2}"))
}

/// ρ at each of [`TABLE_TAUS`] and the area, one row per configuration.
pub fn profile_table(rows: &[ProfileRow]) -> Block {
    let mut header = vec!["optimizer".to_string()];
    header.extend(TABLE_TAUS.iter().map(|t| format!("ρ({t})")));
    header.push(format!("area (τ 1 to {TAU_MAX})"));
    Block::Table {
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut row = vec![r.config.label()];
                row.extend(r.at.iter().map(|x| format!("{x:.2}")));
                row.push(format!("{:.3}", r.area));
                row
            })
            .collect(),
    }
}

/// Each configuration's time to target over the fastest's, per workload.
pub fn ratio_table(workloads: &[Workload], rows: &[ProfileRow]) -> Block {
    let mut header = vec!["optimizer".to_string()];
    header.extend(workloads.iter().map(Workload::name));
    Block::Table {
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut row = vec![r.config.label()];
                row.extend(r.ratios.iter().map(|&x| ratio_cell(x)));
                row
            })
            .collect(),
    }
}

/// The profile as CSV: per configuration its area, ρ at [`TABLE_TAUS`], and its ratio on each
/// workload (`ratio_MODEL_DATASET`, empty where not reached).
pub fn profile_csv(workloads: &[Workload], rows: &[ProfileRow]) -> String {
    let mut out = String::from("label,optimizer,samples,area");
    for t in TABLE_TAUS {
        out.push_str(&format!(",rho_{t}"));
    }
    for w in workloads {
        out.push_str(&format!(",ratio_{}_{}", w.model, w.dataset));
    }
    out.push('\n');
    for r in rows {
        let mut f = vec![
            csv_field(&r.config.label()),
            r.config.optimizer.name().to_string(),
            r.config.samples.map_or(String::new(), |s| s.to_string()),
            r.area.to_string(),
        ];
        f.extend(r.at.iter().map(|x| x.to_string()));
        f.extend(
            r.ratios
                .iter()
                .map(|x| x.map_or(String::new(), |x| x.to_string())),
        );
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rho_counts_the_workloads_within_tau_and_the_area_integrates_it() {
        // Fastest on one workload, 2× on another, never on a third.
        let r = [Some(1.0), Some(2.0), None];
        assert_eq!(rho(&r, 1.0), 1.0 / 3.0);
        assert_eq!(rho(&r, 1.99), 1.0 / 3.0);
        assert_eq!(rho(&r, 2.0), 2.0 / 3.0);
        assert_eq!(rho(&r, 4.0), 2.0 / 3.0);
        // ∫₁⁴ ρ = 3·(1/3) + 2·(1/3) = 5/3, over the width 3.
        assert!((area(&r) - 5.0 / 9.0).abs() < 1e-12);
        // The area equals a fine Riemann sum of ρ.
        let n = 300_000;
        let riemann: f64 = (0..n)
            .map(|i| rho(&r, 1.0 + 3.0 * (i as f64 + 0.5) / n as f64))
            .sum::<f64>()
            / n as f64;
        assert!((area(&r) - riemann).abs() < 1e-4, "{riemann}");
        assert_eq!(area(&[Some(1.0), Some(1.0)]), 1.0);
        assert_eq!(area(&[None, Some(5.0)]), 0.0);
        assert_eq!(format!("{:.3}", area(&[None])), "0.000");
        assert_eq!(
            steps(&r),
            vec![
                (1.0, 1.0 / 3.0),
                (2.0, 1.0 / 3.0),
                (2.0, 2.0 / 3.0),
                (4.0, 2.0 / 3.0)
            ]
        );
    }
}
