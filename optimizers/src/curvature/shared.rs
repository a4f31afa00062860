//! Distributed K-FAC's inverses (KAISA, Pauloski et al., SC'21): in a data-parallel job every
//! process holds the same statistics, so each layer's inverses need computing once. Each layer
//! is assigned to one process, greedily by the cost of its factorisations (`Σ n³`, largest
//! layer first, to the least-loaded process), which inverts it and shares the result; the
//! others take it as it is, so every process preconditions with the same inverses as one
//! process alone would. K-FAC's and SUA's factors only: SKFAC's Woodbury systems are small and
//! every process solves its own (algorithms.md, "Distributed data parallel").

use candle_core::{DType, Tensor};

use super::{Block, FactorError};
use crate::comm::{all_gather_rows, Channel, Communicator};
use kinds::choice;

choice! {
    /// Whether a data-parallel K-FAC or SUA spreads its inverses over the processes.
    pub enum DistributeInverses as "distribute inverses" {
        /// Each layer's inverses computed by one process and shared (with more than one).
        On = "on",
        /// Every process computes every inverse.
        Off = "off",
    }
}

/// The process that computes each of the layers whose inverses cost `costs`: the largest
/// first, each to the process with the least cost so far (the lowest rank on a tie).
pub fn owners(costs: &[f64], processes: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0f64; processes.max(1)];
    let mut owner = vec![0; costs.len()];
    for i in order {
        let p = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("at least one process");
        owner[i] = p;
        load[p] += costs[i];
    }
    owner
}

/// One layer's outcome in a shared refresh.
#[derive(Clone, Debug, PartialEq)]
pub enum Shared {
    /// Inverted at this damping.
    Refreshed(f64),
    /// Failed at every damping: the layer takes its plain gradient.
    Failed,
}

/// Refreshes every block's inverses at `damping`, each computed by its owner ([`owners`]) and
/// shared through `comm`: two collective calls, the outcomes (f64) and the inverses (in their
/// dtype). Every process must call it at the same step. A failed tensor operation on this
/// process is returned with the layer's name.
pub fn refresh(
    blocks: &mut [Block],
    damping: f64,
    comm: &dyn Communicator,
) -> Result<Vec<Shared>, (String, FactorError)> {
    // Every process has the same layers: with none, none of them calls a collective.
    if blocks.is_empty() {
        return Ok(Vec::new());
    }
    let named = |b: &Block| {
        let name = b.name().to_string();
        move |e: FactorError| (name.clone(), e)
    };
    let shapes: Vec<Vec<(usize, usize)>> = blocks
        .iter()
        .map(|b| b.inverse_shapes().map_err(named(b)))
        .collect::<Result<_, _>>()?;
    let costs: Vec<f64> = shapes
        .iter()
        .map(|s| s.iter().map(|&(n, _)| (n as f64).powi(3)).sum())
        .collect();
    let owner = owners(&costs, comm.size());
    let rank = comm.rank();
    // Per layer (outcome, damping): 1 refreshed, −1 failed, 0 not this process's.
    let mut outcomes = vec![0f64; 2 * blocks.len()];
    let mut mine = Vec::new();
    for (i, b) in blocks.iter_mut().enumerate() {
        if owner[i] != rank {
            continue;
        }
        match b.refresh(damping) {
            Ok(lambda) => {
                outcomes[2 * i] = 1.0;
                outcomes[2 * i + 1] = lambda;
                for part in b.inverse_parts().map_err(named(b))? {
                    mine.push(part.flatten_all().map_err(|e| named(b)(e.into()))?);
                }
            }
            Err(e @ FactorError::Candle(_)) => return Err(named(b)(e)),
            Err(_) => outcomes[2 * i] = -1.0,
        }
    }
    comm.all_reduce_sum_f64(&mut outcomes, Channel::Inverses);
    let first = &blocks[0].spec.weight;
    let (dtype, device) = (first.dtype(), first.device().clone());
    let gathered = gather(&mine, dtype, &device, comm).map_err(|e| named(&blocks[0])(e.into()))?;
    // The gathered values run rank by rank, each rank's refreshed layers in order.
    let mut offset = 0;
    for r in 0..comm.size() {
        for i in (0..blocks.len()).filter(|&i| owner[i] == r && outcomes[2 * i] > 0.0) {
            let mut parts = Vec::with_capacity(shapes[i].len());
            for &(rows, cols) in &shapes[i] {
                let part = gathered
                    .narrow(0, offset, rows * cols)
                    .and_then(|t| t.reshape((rows, cols)));
                parts.push(part.map_err(|e| named(&blocks[i])(e.into()))?);
                offset += rows * cols;
            }
            if r != rank {
                let b = &mut blocks[i];
                b.set_inverse(parts, outcomes[2 * i + 1])
                    .map_err(named(b))?;
            }
        }
    }
    Ok(blocks
        .iter_mut()
        .enumerate()
        .map(|(i, b)| {
            if outcomes[2 * i] > 0.0 {
                Shared::Refreshed(outcomes[2 * i + 1])
            } else {
                b.clear_inverse();
                Shared::Failed
            }
        })
        .collect())
}

/// Every process's `parts`, flattened and concatenated in rank order, as one vector.
fn gather(
    parts: &[Tensor],
    dtype: DType,
    device: &candle_core::Device,
    comm: &dyn Communicator,
) -> candle_core::Result<Tensor> {
    let flat = if parts.is_empty() {
        Tensor::zeros((0, 1), dtype, device)?
    } else {
        let all = Tensor::cat(parts, 0)?.to_dtype(dtype)?;
        let n = all.dim(0)?;
        all.reshape((n, 1))?
    };
    all_gather_rows(comm, &flat, Channel::Inverses)?.flatten_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_balance_the_cost_greedily_largest_first() {
        // 8 + 1 + 1 + 6 over two processes: 8 to 0, 6 to 1, then 1 to 1 and 1 to 1.
        assert_eq!(owners(&[1.0, 8.0, 1.0, 6.0], 2), [1, 0, 1, 1]);
        assert_eq!(owners(&[3.0, 3.0, 3.0], 1), [0, 0, 0]);
        // Ties go to the lowest rank; more processes than layers leave some idle.
        assert_eq!(owners(&[2.0, 2.0], 4), [0, 1]);
    }
}
