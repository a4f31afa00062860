//! K-FAC's factor: a moving average of `YᵀY/N`, inverted densely.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use super::{mean_diagonal, missing, moving_average, square, Factor};
use crate::comm::{all_reduce_mean, Channel, Communicator};
use crate::damping::FactorInit;
use crate::linalg::{self, DenseMethod, FactorError, InverseDtype};
use crate::state::{put, take};

/// A factor kept as a dense n×n statistic and inverted densely ([`crate::linalg`]).
pub struct DenseFactor {
    method: DenseMethod,
    precision: InverseDtype,
    init: FactorInit,
    stat: Option<Tensor>,
    inv: Option<Tensor>,
}

impl DenseFactor {
    /// An empty factor that inverts with `method` in `precision` and whose moving average
    /// starts as `init` says.
    pub fn new(method: DenseMethod, precision: InverseDtype, init: FactorInit) -> Self {
        DenseFactor {
            method,
            precision,
            init,
            stat: None,
            inv: None,
        }
    }
}

impl Factor for DenseFactor {
    fn observe(&mut self, rows: &Tensor, decay: f64, comm: &dyn Communicator) -> Result<()> {
        let n = rows.dim(0)? as f64;
        // Equal shards: the mean of the shards' statistics is the global batch's.
        let batch = all_reduce_mean(comm, &(rows.t()?.matmul(rows)? / n)?, Channel::Statistics)?;
        self.stat = Some(moving_average(self.stat.as_ref(), batch, decay, self.init)?);
        Ok(())
    }

    fn refresh(&mut self, damping: f64) -> std::result::Result<(), FactorError> {
        let stat = self.stat.as_ref().ok_or_else(|| missing("statistic"))?;
        self.inv = Some(linalg::damped_inverse_tensor(
            stat,
            damping,
            self.method,
            self.precision,
        )?);
        Ok(())
    }

    fn has_inverse(&self) -> bool {
        self.inv.is_some()
    }

    fn clear_inverse(&mut self) {
        self.inv = None;
    }

    fn apply_right(&self, v: &Tensor) -> Result<Tensor> {
        v.matmul(self.inv.as_ref().ok_or_else(|| missing("inverse"))?)
    }

    fn apply_left(&self, v: &Tensor) -> Result<Tensor> {
        self.inv
            .as_ref()
            .ok_or_else(|| missing("inverse"))?
            .matmul(v)
    }

    fn mean_diagonal(&self) -> Result<f64> {
        mean_diagonal(self.stat.as_ref().ok_or_else(|| missing("statistic"))?)
    }

    fn matrix(&self) -> Result<Tensor> {
        self.stat.clone().ok_or_else(|| missing("statistic"))
    }

    fn inverse_matrix(&self) -> Result<Tensor> {
        self.inv.clone().ok_or_else(|| missing("inverse"))
    }

    fn inverse_shapes(&self) -> Result<Vec<(usize, usize)>> {
        Ok(vec![square(self.stat.as_ref())?])
    }

    fn inverse_parts(&self) -> Result<Vec<Tensor>> {
        Ok(vec![self.inverse_matrix()?])
    }

    fn set_inverse(&mut self, mut parts: Vec<Tensor>, _damping: f64) -> Result<()> {
        self.inv = Some(parts.pop().ok_or_else(|| missing("inverse"))?);
        Ok(())
    }

    fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()> {
        put(out, format!("{prefix}.stat"), self.stat.as_ref())?;
        put(out, format!("{prefix}.inv"), self.inv.as_ref())
    }

    fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()> {
        self.stat = take(src, &format!("{prefix}.stat"))?;
        self.inv = take(src, &format!("{prefix}.inv"))?;
        Ok(())
    }
}
