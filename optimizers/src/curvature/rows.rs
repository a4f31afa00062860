//! Which rows each variant feeds its two factors (algorithms.md, "Which `Y` each variant uses").

use candle_core::{CpuStorage, Result, Storage, Tensor, WithDType};
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::layer::LayerStats;

/// All `M·T` rows: `(A_aug, G)` (K-FAC, and SKFAC on Linear layers).
pub fn all(stats: &LayerStats) -> Result<(Tensor, Tensor)> {
    Ok((stats.a_augmented()?, stats.g.clone()))
}

/// Reduce Sum (paper §3.2.2): per-example means over the `T` positions, `M` rows each.
pub fn reduce_sum(stats: &LayerStats) -> Result<(Tensor, Tensor)> {
    let (m, t) = (stats.batch, stats.positions);
    if t == 1 {
        return all(stats);
    }
    // The mean of A_aug is the mean of A with its column of ones: augment the M rows only.
    let a = LayerStats {
        a: mean_over_positions(&stats.a, m, t)?,
        ..stats.clone()
    };
    Ok((a.a_augmented()?, mean_over_positions(&stats.g, m, t)?))
}

/// `[M·T, C]` → `[M, C]`: the mean of each example's `T` consecutive rows.
///
/// On CPU this sums whole rows, one example per task. Candle's `mean(1)` over the middle axis
/// of `[M, T, C]` walked the `T` values of each output entry with stride `C` on one thread:
/// it was most of SKFAC-RS's statistics stage on a ResNet-8 (`perf`, `bench-gains`).
fn mean_over_positions(x: &Tensor, m: usize, t: usize) -> Result<Tensor> {
    let c = x.dim(1)?;
    let x = x.contiguous()?;
    let fast = {
        let (storage, layout) = x.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(v)), Some((lo, hi))) => Some(Tensor::from_vec(
                row_means(&v[lo..hi], t, c),
                (m, c),
                x.device(),
            )),
            (Storage::Cpu(CpuStorage::F64(v)), Some((lo, hi))) => Some(Tensor::from_vec(
                row_means(&v[lo..hi], t, c),
                (m, c),
                x.device(),
            )),
            _ => None,
        }
    };
    // Other devices and types: candle's reduction.
    fast.unwrap_or_else(|| x.reshape((m, t, c))?.mean(1))
}

/// Means of consecutive blocks of `t` rows of `c` values.
fn row_means<T: WithDType>(x: &[T], t: usize, c: usize) -> Vec<T> {
    if c == 0 || t == 0 {
        return Vec::new();
    }
    let scale = T::from_f64(1.0 / t as f64);
    let mut out = vec![T::zero(); x.len() / t];
    out.par_chunks_mut(c)
        .zip(x.par_chunks(t * c))
        .for_each(|(acc, block)| {
            for row in block.chunks_exact(c) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            acc.iter_mut().for_each(|a| *a *= scale);
        });
    out
}

/// Spatial Subsampling (paper §3.2.1): `s` positions per example, drawn without replacement,
/// the same positions for `A` and `G`; all positions when `s ≥ T`.
///
/// Example `e` draws from stream `first_example + e` of `rng`, so a process holding a shard
/// of the global batch (its first example being `first_example`) draws what a single process
/// would for those examples.
pub fn subsample(
    stats: &LayerStats,
    s: usize,
    rng: &ChaCha8Rng,
    first_example: usize,
) -> Result<(Tensor, Tensor)> {
    let (m, t) = (stats.batch, stats.positions);
    let (a, g) = all(stats)?;
    if s >= t {
        return Ok((a, g));
    }
    let mut idx = Vec::with_capacity(m * s);
    for example in 0..m {
        let mut r = rng.clone();
        r.set_stream((first_example + example) as u64);
        let mut picked = sample(&mut r, t, s).into_vec();
        picked.sort_unstable();
        idx.extend(picked.into_iter().map(|p| (example * t + p) as u32));
    }
    let idx = Tensor::from_vec(idx, m * s, a.device())?;
    Ok((a.index_select(&idx, 0)?, g.index_select(&idx, 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    fn stats(m: usize, t: usize) -> LayerStats {
        let dev = Device::Cpu;
        let a: Vec<f64> = (0..m * t * 2).map(|i| i as f64).collect();
        let g: Vec<f64> = (0..m * t * 3).map(|i| -(i as f64)).collect();
        LayerStats {
            a: Tensor::from_vec(a, (m * t, 2), &dev).unwrap(),
            g: Tensor::from_vec(g, (m * t, 3), &dev).unwrap(),
            batch: m,
            positions: t,
            has_bias: true,
        }
    }

    #[test]
    fn reduce_sum_averages_each_example_over_positions() {
        let (a, g) = reduce_sum(&stats(2, 3)).unwrap();
        // Example 0's A rows are [0,1],[2,3],[4,5] (+ bias 1): mean [2,3,1].
        assert_eq!(
            a.to_vec2::<f64>().unwrap(),
            vec![vec![2., 3., 1.], vec![8., 9., 1.]]
        );
        assert_eq!(g.dims(), &[2, 3]);
        assert_eq!(g.to_vec2::<f64>().unwrap()[0], vec![-3., -4., -5.]);
    }

    #[test]
    fn reduce_sum_matches_candles_mean_in_both_types() {
        let dev = Device::Cpu;
        let (m, t, c) = (3, 50, 7);
        let x = Tensor::randn(0f64, 1.0, (m * t, c), &dev).unwrap();
        let want = x.reshape((m, t, c)).unwrap().mean(1).unwrap();
        for dtype in [candle_core::DType::F64, candle_core::DType::F32] {
            let got = mean_over_positions(&x.to_dtype(dtype).unwrap(), m, t).unwrap();
            let err = (got.to_dtype(candle_core::DType::F64).unwrap() - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(err < 1e-6, "{dtype:?}: {err}");
        }
        // A strided (transposed) input is made contiguous first.
        let xt = x.t().unwrap().contiguous().unwrap().t().unwrap();
        let got = mean_over_positions(&xt, m, t).unwrap();
        let err = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f64>().unwrap() < 1e-12);
    }

    #[test]
    fn subsampling_keeps_a_and_g_rows_paired_and_distinct_per_example() {
        let st = stats(4, 9);
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (a, g) = subsample(&st, 4, &rng, 0).unwrap();
        assert_eq!(a.dims(), &[16, 3]);
        let (a, g) = (a.to_vec2::<f64>().unwrap(), g.to_vec2::<f64>().unwrap());
        for (k, (ar, gr)) in a.iter().zip(&g).enumerate() {
            let row = (ar[0] / 2.0) as usize; // A row r holds [2r, 2r+1]
            assert_eq!(row / 9, k / 4, "row from its own example");
            assert_eq!(gr[0], -(3.0 * row as f64), "G row paired with A row");
        }
        for e in 0..4 {
            let mut rows: Vec<i64> = (0..4).map(|i| a[e * 4 + i][0] as i64).collect();
            rows.dedup();
            assert_eq!(rows.len(), 4, "without replacement");
        }
        let (a_all, _) = subsample(&st, 9, &rng, 0).unwrap();
        assert_eq!(a_all.dims(), &[36, 3]);
        // A shard starting at example 2 draws what the whole batch drew for examples 2 and 3.
        let half = LayerStats {
            a: st.a.narrow(0, 18, 18).unwrap(),
            g: st.g.narrow(0, 18, 18).unwrap(),
            batch: 2,
            ..st.clone()
        };
        let (a_half, _) = subsample(&half, 4, &rng, 2).unwrap();
        let first = |v: Vec<Vec<f64>>| v.iter().map(|r| r[0]).collect::<Vec<_>>();
        assert_eq!(
            first(a_half.to_vec2::<f64>().unwrap()),
            a[8..].iter().map(|r| r[0]).collect::<Vec<_>>()
        );
    }
}
