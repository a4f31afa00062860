//! Reading a whole sweep back for `skfac report`: runs with their metadata, epochs and mean
//! stage times (averaged in SQL, so millions of step rows never leave SQLite).

use reports::{CommMeans, EpochPoint, RunResult, StageMeans, SweepResults};
use sqlx::Row;

use optimizers::OptimizerKind;

use crate::train::StepTimes;

use super::{fetch_epochs, stage_columns, Result, Store};

impl Store {
    /// Names of every sweep in the database, oldest first.
    pub fn sweep_names(&self) -> Result<Vec<String>> {
        let q = sqlx::query("SELECT name FROM sweeps ORDER BY id");
        let rows = self
            .rt
            .block_on(q.fetch_all(&self.pool))
            .map_err(|e| self.sql(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Sweep `name` with every run, or `None` when the database has no such sweep.
    pub fn sweep_results(&self, name: &str) -> Result<Option<SweepResults>> {
        self.rt
            .block_on(async {
                let Some(sweep) =
                    sqlx::query("SELECT id, target_accuracy FROM sweeps WHERE name = ?")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?
                else {
                    return Ok(None);
                };
                let id: i64 = sweep.get(0);
                let runs = sqlx::query(
                    "SELECT id, model, dataset, optimizer, samples, seed, status, git_commit,
                         cpu_model, threads, processes, crate_versions, comm_strategy, cores,
                         COALESCE(device, 'cpu')
                     FROM runs WHERE sweep_id = ? ORDER BY id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                let stages_sql = format!(
                    "SELECT COUNT(*) AS steps, {},
                         AVG(comm_gradient_seconds) AS gradient_seconds,
                         CAST(AVG(comm_gradient_bytes) AS REAL) AS gradient_bytes,
                         AVG(comm_gradient_wait_seconds) AS gradient_wait_seconds,
                         SUM(comm_statistics_seconds) AS statistics_seconds,
                         CAST(SUM(comm_statistics_bytes) AS REAL) AS statistics_bytes,
                         SUM(comm_statistics_wait_seconds) AS statistics_wait_seconds,
                         SUM(comm_statistics_bytes > 0) AS statistics_steps,
                         SUM(comm_inverse_seconds) AS inverse_seconds,
                         CAST(SUM(comm_inverse_bytes) AS REAL) AS inverse_bytes,
                         SUM(comm_inverse_wait_seconds) AS inverse_wait_seconds,
                         SUM(comm_inverse_bytes > 0) AS inverse_steps
                     FROM iterations WHERE run_id = ?",
                    stage_columns(|n| format!("AVG(\"{n}\") AS \"mean_{n}\""))
                );
                let mut out = Vec::with_capacity(runs.len());
                for r in &runs {
                    let run: i64 = r.get(0);
                    let epochs = fetch_epochs(&self.pool, run).await?;
                    let stages = sqlx::query(&stages_sql)
                        .bind(run)
                        .fetch_one(&self.pool)
                        .await?;
                    let steps: i64 = stages.get("steps");
                    let optimizer: String = r.get(3);
                    let optimizer = OptimizerKind::parse(&optimizer)
                        .map_err(|e| sqlx::Error::Decode(format!("run {run}: {e}").into()))?;
                    out.push(RunResult {
                        model: r.get(1),
                        dataset: r.get(2),
                        optimizer,
                        samples: r.get::<Option<i64>, _>(4).map(|s| s as u32),
                        seed: r.get::<i64, _>(5) as u64,
                        status: r.get(6),
                        git_commit: r.get(7),
                        cpu_model: r.get(8),
                        device: r.get(14),
                        threads: r.get::<i64, _>(9) as usize,
                        cores: r.get::<Option<i64>, _>(13).map(|c| c as usize),
                        processes: r.get::<i64, _>(10) as usize,
                        crate_versions: r.get(11),
                        comm_strategy: r.get(12),
                        comm: (steps > 0).then(|| {
                            let stat_steps: i64 = stages.get("statistics_steps");
                            let n = stat_steps.max(1) as f64;
                            let inv_steps: i64 = stages.get("inverse_steps");
                            let ni = inv_steps.max(1) as f64;
                            CommMeans {
                                gradient_seconds: stages.get("gradient_seconds"),
                                gradient_wait_seconds: stages.get("gradient_wait_seconds"),
                                gradient_bytes: stages.get("gradient_bytes"),
                                statistics_seconds: stages.get::<f64, _>("statistics_seconds") / n,
                                statistics_wait_seconds: stages
                                    .get::<f64, _>("statistics_wait_seconds")
                                    / n,
                                statistics_bytes: stages.get::<f64, _>("statistics_bytes") / n,
                                statistics_steps: stat_steps as usize,
                                inverse_seconds: stages.get::<f64, _>("inverse_seconds") / ni,
                                inverse_wait_seconds: stages.get::<f64, _>("inverse_wait_seconds")
                                    / ni,
                                inverse_bytes: stages.get::<f64, _>("inverse_bytes") / ni,
                                inverse_steps: inv_steps as usize,
                            }
                        }),
                        epochs: epochs
                            .iter()
                            .map(|e| EpochPoint {
                                epoch: e.epoch,
                                train_loss: e.train_loss,
                                train_accuracy: e.train_accuracy,
                                test_loss: e.test_loss,
                                test_accuracy: e.test_accuracy,
                                validation_accuracy: e.validation_accuracy,
                                wall_seconds: e.wall_seconds,
                                epoch_seconds: e.epoch_seconds,
                                cpu_seconds: e.cpu_seconds,
                                load_average: e.load_average,
                                probe_seconds: e.probe_seconds,
                            })
                            .collect(),
                        stages: (steps > 0).then(|| StageMeans {
                            seconds: StepTimes::NAMES
                                .map(|n| stages.get::<f64, _>(format!("mean_{n}").as_str())),
                            steps: steps as usize,
                        }),
                    });
                }
                Ok(Some(SweepResults {
                    name: name.to_string(),
                    target: sweep.get(1),
                    runs: out,
                    search: Vec::new(),
                }))
            })
            .map_err(|e| self.sql(e))
    }
}
