//! Regression tracking of wall-clock gains: ratios between optimizers measured side by side
//! in one benchmark run (so they carry across machines, unlike seconds), compared between a
//! baseline record and the newest one.

use kinds::OptimizerKind;
use kinds::{DenseMethod, InverseDtype};

use crate::data::STAGES;

/// How a K-FAC row factorised: the method and the precision.
pub type KfacConfig = (DenseMethod, InverseDtype);

/// K-FAC as its peers run it: kfac-pytorch's default preconditioner (`torch.linalg.eigh` with
/// `inv_dtype = float32`). The gains are stated against it and against the fastest one.
pub const PEERS: KfacConfig = (DenseMethod::Eigen, InverseDtype::F32);

/// What K-FAC rows stored before the configuration was recorded ran with.
pub const FORMER_KFAC: KfacConfig = (DenseMethod::Eigen, InverseDtype::F64);

/// One optimizer's mean seconds per step, per stage, in a benchmark record.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchStage {
    pub optimizer: OptimizerKind,
    pub samples: Option<u32>,
    /// K-FAC rows only: how its factors were inverted.
    pub kfac: Option<KfacConfig>,
    /// Inverse refreshes that failed for good during the benchmark (the layer then took its
    /// plain gradient): a configuration with any does not train as measured.
    pub failed_refreshes: u32,
    pub seconds: [f64; 7],
}

impl BenchStage {
    pub fn step(&self) -> f64 {
        self.seconds.iter().sum()
    }

    fn stage(&self, name: &str) -> f64 {
        let i = STAGES
            .iter()
            .position(|s| *s == name)
            .expect("a known stage");
        self.seconds[i]
    }

    /// `skfac-ss(1)` or `kfac (eigen, f32)` style, as ratios name it.
    pub fn label(&self) -> String {
        match (self.samples, self.kfac) {
            (Some(s), _) if self.optimizer.samples_matter() => format!("{}({s})", self.optimizer),
            (_, Some((method, precision))) => {
                format!(
                    "{} ({}, {})",
                    self.optimizer,
                    method.name(),
                    precision.name()
                )
            }
            _ => self.optimizer.to_string(),
        }
    }

    /// Whether this is a K-FAC row.
    pub fn is_kfac(&self) -> bool {
        self.optimizer == OptimizerKind::Kfac
    }

    /// Whether two rows are the same optimizer in the same configuration.
    pub fn same_row(&self, o: &BenchStage) -> bool {
        (self.optimizer, self.samples, self.kfac) == (o.optimizer, o.samples, o.kfac)
    }
}

impl BenchRecord {
    /// The K-FAC row run as `config`.
    pub fn kfac(&self, config: KfacConfig) -> Option<&BenchStage> {
        self.stages
            .iter()
            .find(|s| s.is_kfac() && s.kfac == Some(config))
    }

    /// The fastest K-FAC row whose refreshes all succeeded, when the record holds more than one
    /// K-FAC configuration (older records hold one, which is no choice).
    pub fn fastest_kfac(&self) -> Option<&BenchStage> {
        let trains = || {
            self.stages
                .iter()
                .filter(|s| s.is_kfac() && s.failed_refreshes == 0)
        };
        if self.stages.iter().filter(|s| s.is_kfac()).count() < 2 {
            return None;
        }
        trains().min_by(|a, b| a.step().total_cmp(&b.step()))
    }
}

/// One `skfac bench-gains` run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRecord {
    pub id: i64,
    pub created_at: String,
    pub git_commit: String,
    pub tags: Vec<String>,
    pub cpu_model: String,
    pub threads: usize,
    /// `cpu`, or `cuda:N (GPU name)`.
    pub device: String,
    pub model: String,
    pub batch: usize,
    /// Timed steps per optimizer.
    pub steps: usize,
    /// The statistics and inverse periods the stage means are amortised over.
    pub t_cov: usize,
    pub t_inv: usize,
    pub stages: Vec<BenchStage>,
}

/// Whether a ratio should go down (a time ratio) or up (a speed-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub name: String,
    pub better: Better,
    pub value: f64,
}

/// The ratios a record is judged by, each K-FAC reference named by its configuration (so a
/// record made before K-FAC ran in several still compares by its `kfac (eigen, f64)` row):
/// - each other K-FAC-family step time over each K-FAC row's, and over the fastest K-FAC's
///   (`kfac (fastest)`, when the record has a choice) (SKFAC's gain; lower is better);
/// - each K-FAC configuration's step time over the peers' ([`PEERS`]; lower is better);
/// - each optimizer's step time over SGD's (the overhead over SGD; lower is better);
/// - each K-FAC reference's inverse and precondition stages over each variant's (speed-ups;
///   higher is better).
pub fn ratios(r: &BenchRecord) -> Vec<Ratio> {
    let sgd = r.stages.iter().find(|s| s.optimizer == OptimizerKind::Sgd);
    let mut refs: Vec<(String, &BenchStage)> = r
        .stages
        .iter()
        .filter(|s| s.is_kfac())
        .map(|k| (k.label(), k))
        .collect();
    if let Some(f) = r.fastest_kfac() {
        refs.push(("kfac (fastest)".into(), f));
    }
    let mut out = Vec::new();
    for s in &r.stages {
        if s.is_kfac() && s.kfac != Some(PEERS) {
            if let Some(p) = r.kfac(PEERS) {
                out.push(Ratio {
                    name: format!("step {} / {}", s.label(), p.label()),
                    better: Better::Lower,
                    value: s.step() / p.step(),
                });
            }
        }
        let second_order = s.optimizer.is_second_order() && !s.is_kfac();
        for (name, k) in refs.iter().filter(|_| second_order) {
            out.push(Ratio {
                name: format!("step {} / {name}", s.label()),
                better: Better::Lower,
                value: s.step() / k.step(),
            });
            for stage in ["inverse", "precondition"] {
                if k.stage(stage) > 0.0 && s.stage(stage) > 0.0 {
                    out.push(Ratio {
                        name: format!("{stage} speed-up {name} / {}", s.label()),
                        better: Better::Higher,
                        value: k.stage(stage) / s.stage(stage),
                    });
                }
            }
        }
        if let Some(g) = sgd.filter(|_| s.optimizer != OptimizerKind::Sgd) {
            out.push(Ratio {
                name: format!("overhead {} / sgd", s.label()),
                better: Better::Lower,
                value: s.step() / g.step(),
            });
        }
    }
    out
}

/// A ratio in the baseline and in the current record.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub better: Better,
    pub baseline: f64,
    pub current: f64,
    /// How much worse the current value is, as a fraction (negative: better).
    pub worse_by: f64,
    pub regressed: bool,
}

/// Compares every ratio both records have; a ratio regressed when it is worse by more than
/// `tolerance` (a fraction: 0.10 for 10%).
pub fn compare(baseline: &BenchRecord, current: &BenchRecord, tolerance: f64) -> Vec<Comparison> {
    let base = ratios(baseline);
    ratios(current)
        .into_iter()
        .filter_map(|c| {
            let b = base.iter().find(|b| b.name == c.name)?;
            let worse_by = match c.better {
                Better::Lower => c.value / b.value - 1.0,
                Better::Higher => b.value / c.value - 1.0,
            };
            Some(Comparison {
                name: c.name,
                better: c.better,
                baseline: b.value,
                current: c.value,
                worse_by,
                // A ratio that is no longer finite (a stage timed at zero) counts as regressed.
                regressed: worse_by.is_nan() || worse_by > tolerance,
            })
        })
        .collect()
}

/// A plain-text table of the comparisons, with both records' step seconds under it.
pub fn render(
    baseline: &BenchRecord,
    current: &BenchRecord,
    rows: &[Comparison],
    tolerance: f64,
) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    let mut s = format!(
        "baseline: record {} (commit {}{}, {})\ncurrent:  record {} (commit {}, {})\n\n",
        baseline.id,
        baseline.git_commit,
        if baseline.tags.is_empty() {
            String::new()
        } else {
            format!(", tag {}", baseline.tags.join(" "))
        },
        baseline.created_at,
        current.id,
        current.git_commit,
        current.created_at
    );
    s.push_str(&format!(
        "{:<width$}  {:>10}  {:>10}  {:>8}  verdict\n",
        "ratio", "baseline", "current", "change"
    ));
    for r in rows {
        let verdict = if r.regressed {
            "REGRESSED"
        } else if r.worse_by < -tolerance {
            "improved"
        } else {
            "ok"
        };
        let arrow = match r.better {
            Better::Lower => "↓",
            Better::Higher => "↑",
        };
        s.push_str(&format!(
            "{:<width$}  {:>10.4}  {:>10.4}  {:>+7.1}%  {verdict} ({arrow} is better)\n",
            r.name,
            r.baseline,
            r.current,
            100.0 * r.worse_by
        ));
    }
    s.push_str("\nmean seconds per step (baseline → current):\n");
    for c in &current.stages {
        let b = baseline.stages.iter().find(|b| b.same_row(c));
        s.push_str(&format!(
            "  {:<20} {} → {:.4}\n",
            c.label(),
            b.map_or("—".to_string(), |b| format!("{:.4}", b.step())),
            c.step()
        ));
    }
    for (which, r) in [("baseline", baseline), ("current", current)] {
        if let Some(f) = r.fastest_kfac() {
            s.push_str(&format!(
                "fastest K-FAC that trains ({which}): {}\n",
                f.label()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(o: &str, samples: Option<u32>, fwd: f64, inv: f64) -> BenchStage {
        let optimizer: OptimizerKind = o.parse().unwrap();
        BenchStage {
            optimizer,
            samples,
            kfac: (optimizer == OptimizerKind::Kfac).then_some(FORMER_KFAC),
            failed_refreshes: 0,
            seconds: [fwd, fwd, 0.0, inv, 0.0, 0.0, 0.0],
        }
    }

    fn kfac(config: KfacConfig, inv: f64, failed_refreshes: u32) -> BenchStage {
        BenchStage {
            kfac: Some(config),
            failed_refreshes,
            ..stage("kfac", None, 1.0, inv)
        }
    }

    fn record(skfac_inverse: f64) -> BenchRecord {
        BenchRecord {
            id: 1,
            created_at: "t".into(),
            git_commit: "c".into(),
            tags: vec![],
            cpu_model: "cpu".into(),
            device: "cpu".into(),
            threads: 2,
            model: "resnet8".into(),
            batch: 32,
            steps: 10,
            t_cov: 20,
            t_inv: 200,
            stages: vec![
                stage("sgd", None, 1.0, 0.0),
                stage("kfac", None, 1.0, 2.0),
                stage("skfac-rs", None, 1.0, skfac_inverse),
            ],
        }
    }

    #[test]
    fn ratios_are_the_documented_quotients() {
        let r = ratios(&record(0.5));
        let get = |n: &str| r.iter().find(|x| x.name == n).unwrap().value;
        assert_eq!(get("step skfac-rs / kfac (eigen, f64)"), 2.5 / 4.0);
        assert_eq!(get("inverse speed-up kfac (eigen, f64) / skfac-rs"), 4.0);
        assert_eq!(get("overhead kfac (eigen, f64) / sgd"), 2.0);
        assert_eq!(get("overhead skfac-rs / sgd"), 1.25);
        // One K-FAC configuration is no choice: no fastest, no peers.
        assert!(r.iter().all(|x| !x.name.contains("fastest")), "{r:?}");
    }

    #[test]
    fn gains_are_stated_against_the_peers_and_the_fastest_k_fac_that_trains() {
        use DenseMethod::*;
        use InverseDtype::*;
        let mut rec = record(0.5);
        rec.stages = vec![
            stage("sgd", None, 1.0, 0.0),
            kfac((Eigen, F32), 3.0, 0),
            kfac((Eigen, F64), 6.0, 0),
            // The fastest of all, but a refresh failed: it does not count.
            kfac((Cholesky, F32), 0.1, 1),
            kfac((Cholesky, F64), 1.0, 0),
            stage("skfac-rs", None, 1.0, 0.5),
        ];
        assert_eq!(rec.fastest_kfac().unwrap().label(), "kfac (cholesky, f64)");
        let r = ratios(&rec);
        let get = |n: &str| r.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("step skfac-rs / kfac (eigen, f32)"), Some(2.5 / 5.0));
        assert_eq!(get("step skfac-rs / kfac (fastest)"), Some(2.5 / 3.0));
        assert_eq!(get("inverse speed-up kfac (fastest) / skfac-rs"), Some(2.0));
        assert_eq!(
            get("step kfac (eigen, f64) / kfac (eigen, f32)"),
            Some(8.0 / 5.0)
        );
        // K-FAC rows are references, not compared with one another through skfac's names.
        assert_eq!(get("step kfac (eigen, f64) / kfac (fastest)"), None);
        // A record from before keeps its ratios comparable by the eigen-f64 row's name.
        let old = ratios(&record(0.5));
        assert!(old.iter().any(|o| r
            .iter()
            .any(|n| n.name == o.name && n.name == "step skfac-rs / kfac (eigen, f64)")));
    }

    #[test]
    fn a_slower_inverse_beyond_tolerance_regresses_and_noise_within_it_does_not() {
        let base = record(0.5);
        let within = compare(&base, &record(0.54), 0.10);
        assert!(within.iter().all(|c| !c.regressed), "{within:?}");
        let worse = compare(&base, &record(1.0), 0.10);
        let inv = worse
            .iter()
            .find(|c| c.name == "inverse speed-up kfac (eigen, f64) / skfac-rs")
            .unwrap();
        assert!(
            inv.regressed && (inv.worse_by - 1.0).abs() < 1e-12,
            "{inv:?}"
        );
    }
}
