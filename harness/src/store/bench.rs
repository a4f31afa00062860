//! Benchmark records for regression tracking (`skfac bench-gains`, `skfac regress`).

use reports::regress::{BenchRecord, BenchStage};
use sqlx::Row;

use optimizers::{OptimizerKind, StageTimes};

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
                    "INSERT INTO bench_stages (record_id, optimizer, samples, {})
                     VALUES (?, ?, ?, {})",
                    stage_columns(|n| format!("\"{n}\"")),
                    stage_columns(|_| "?".into())
                );
                for s in &r.stages {
                    let mut q = sqlx::query(&sql)
                        .bind(id)
                        .bind(s.optimizer.name())
                        .bind(s.samples.map(i64::from));
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
                        "SELECT optimizer, samples, {} FROM bench_stages
                         WHERE record_id = ? ORDER BY rowid",
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
                                let name: String = s.get(0);
                                Ok(BenchStage {
                                    optimizer: OptimizerKind::parse(&name).map_err(|e| {
                                        sqlx::Error::Decode(format!("record {id}: {e}").into())
                                    })?,
                                    samples: s.get::<Option<i64>, _>(1).map(|v| v as u32),
                                    seconds: StageTimes::NAMES.map(|n| s.get::<f64, _>(n)),
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
