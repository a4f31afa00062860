//! Benchmark records for regression tracking (`skfac bench-gains`, `skfac regress`).

use reports::regress::{BenchRecord, BenchStage, FORMER_KFAC};
use sqlx::Row;

use optimizers::curvature::{DenseMethod, InverseDtype};
use optimizers::OptimizerKind;

use crate::train::StepTimes;

use super::{now, stage_columns, Result, Store};

impl Store {
    /// Stores a benchmark record (its `id` and `created_at` are assigned here); returns the id.
    pub fn add_bench(
        &self,
        r: &BenchRecord,
        crate_versions: &str,
        hyper_json: &str,
    ) -> Result<i64> {
        self.rt
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                let created = if r.created_at.is_empty() { now() } else { r.created_at.clone() };
                let id: i64 = sqlx::query(
                    "INSERT INTO bench_records (created_at, git_commit, git_tags, cpu_model, threads,
                         crate_versions, model, batch, steps, hyper, device)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(created)
                .bind(&r.git_commit)
                .bind(r.tags.join(" "))
                .bind(&r.cpu_model)
                .bind(r.threads as i64)
                .bind(crate_versions)
                .bind(&r.model)
                .bind(r.batch as i64)
                .bind(r.steps as i64)
                .bind(hyper_json)
                .bind(&r.device)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                let sql = format!(
                    "INSERT INTO bench_stages (record_id, optimizer, samples, dense_method,
                         inverse_dtype, failed_refreshes, {})
                     VALUES (?, ?, ?, ?, ?, ?, {})",
                    stage_columns(|n| format!("\"{n}\"")),
                    stage_columns(|_| "?".into())
                );
                for s in &r.stages {
                    let mut q = sqlx::query(&sql)
                        .bind(id)
                        .bind(s.optimizer.name())
                        .bind(s.samples.map(i64::from))
                        .bind(s.kfac.map(|(m, _)| m.name()))
                        .bind(s.kfac.map(|(_, p)| p.name()))
                        .bind(i64::from(s.failed_refreshes));
                    for v in s.seconds {
                        q = q.bind(v);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(id)
            })
            .map_err(|e| self.sql(e))
    }

    /// Every benchmark record, oldest first.
    pub fn bench_records(&self) -> Result<Vec<BenchRecord>> {
        self.rt
            .block_on(async {
                let recs = sqlx::query(
                    "SELECT id, created_at, git_commit, git_tags, cpu_model, threads, model, batch,
                         steps, hyper, COALESCE(device, 'cpu') FROM bench_records ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(recs.len());
                for r in &recs {
                    let id: i64 = r.get(0);
                    let hyper: serde_json::Value = serde_json::from_str(&r.get::<String, _>(9))
                        .map_err(|e| {
                            sqlx::Error::Decode(format!("record {id}: hyper: {e}").into())
                        })?;
                    let stages = sqlx::query(&format!(
                        "SELECT optimizer, samples, dense_method, inverse_dtype,
                             COALESCE(failed_refreshes, 0), {}
                         FROM bench_stages WHERE record_id = ? ORDER BY rowid",
                        stage_columns(|n| format!("\"{n}\""))
                    ))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                    out.push(BenchRecord {
                        id,
                        created_at: r.get(1),
                        git_commit: r.get(2),
                        tags: r
                            .get::<String, _>(3)
                            .split_whitespace()
                            .map(str::to_string)
                            .collect(),
                        cpu_model: r.get(4),
                        threads: r.get::<i64, _>(5) as usize,
                        device: r.get(10),
                        model: r.get(6),
                        batch: r.get::<i64, _>(7) as usize,
                        steps: r.get::<i64, _>(8) as usize,
                        t_cov: period(&hyper, "t_cov"),
                        t_inv: period(&hyper, "t_inv"),
                        stages: stages
                            .iter()
                            .map(|s| {
                                let bad = |e: optimizers::UnknownChoice| {
                                    sqlx::Error::Decode(format!("record {id}: {e}").into())
                                };
                                let optimizer =
                                    OptimizerKind::parse(&s.get::<String, _>(0)).map_err(bad)?;
                                let method: Option<String> = s.get(2);
                                let precision: Option<String> = s.get(3);
                                let kfac = match (method, precision) {
                                    (Some(m), Some(p)) => Some((
                                        DenseMethod::parse(&m).map_err(bad)?,
                                        InverseDtype::parse(&p).map_err(bad)?,
                                    )),
                                    // Rows from before the configuration was stored.
                                    _ if optimizer == OptimizerKind::Kfac => Some(FORMER_KFAC),
                                    _ => None,
                                };
                                Ok(BenchStage {
                                    optimizer,
                                    samples: s.get::<Option<i64>, _>(1).map(|v| v as u32),
                                    kfac,
                                    failed_refreshes: s.get::<i64, _>(4) as u32,
                                    seconds: StepTimes::NAMES.map(|n| s.get::<f64, _>(n)),
                                })
                            })
                            .collect::<std::result::Result<_, sqlx::Error>>()?,
                    });
                }
                Ok(out)
            })
            .map_err(|e| self.sql(e))
    }
}

/// A period from a record's hyper-parameters (0 when absent). Records store the periods their
/// stage means are amortised over there; before amortising, they were the periods the timed
/// steps ran at, which is the same thing.
fn period(hyper: &serde_json::Value, name: &str) -> usize {
    hyper
        .get(name)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as usize
}
