//! `skfac bench-inverse`: one damped inverse `(F + λI)⁻¹` of an n×n statistic, where the
//! statistic lives (cuSOLVER on a GPU, faer on the CPU) against a round trip to the host (the
//! copies, faer, the copy back), side by side, for K-FAC's dense factors and SKFAC's N×N
//! Woodbury systems. It answers which side a factor of a given size is cheaper on, and it
//! checks the device's inverse: against the host's, and by how far `(F + λI)·X` is from `I`.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use optimizers::curvature::DenseMethod;
use optimizers::linalg;

use crate::bench_step::median;

/// The damping of the benchmark's inverses (the paper's λ).
const DAMPING: f64 = 1e-3;

/// One size and method, timed both ways.
#[derive(Clone, Debug)]
pub struct InverseBench {
    pub n: usize,
    pub method: DenseMethod,
    /// Median seconds with the statistic inverted where it lives.
    pub on_device: f64,
    /// Median seconds with a round trip to the host, copies included.
    pub via_host: f64,
    /// Largest entry of the difference of the two inverses, relative to the largest entry.
    pub difference: f64,
    /// Largest entry of `(F + λI)·X − I` for the device's inverse `X`: how well it inverts.
    pub residual: f64,
}

/// A statistic like K-FAC's, `YᵀY/(n+8)` for standard-normal `Y`, in f32 on `device`.
fn statistic(n: usize, device: &Device) -> Result<Tensor> {
    let rows = n + 8;
    let y = Tensor::randn(0f32, 1.0, (rows, n), device)?;
    Ok((y.t()?.matmul(&y)? / rows as f64)?)
}

/// Median seconds of `reps` calls of `f` after one untimed call, waiting for `device` after
/// each, and the last result.
fn time(device: &Device, reps: usize, f: impl Fn() -> Result<Tensor>) -> Result<(f64, Tensor)> {
    let mut last = f()?;
    device.synchronize()?;
    let mut secs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        last = f()?;
        device.synchronize()?;
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok((median(secs), last))
}

/// Times the inverse of an n×n statistic for each of `sizes` and `methods`, `reps` times
/// each way. The thread count must have been configured already.
pub fn run(
    device: &Device,
    sizes: &[usize],
    methods: &[DenseMethod],
    reps: usize,
) -> Result<Vec<InverseBench>> {
    anyhow::ensure!(reps >= 1, "--reps must be at least 1");
    let mut out = Vec::new();
    for &n in sizes {
        anyhow::ensure!(n >= 1, "--sizes takes sizes of at least 1");
        let stat = statistic(n, device)?;
        for &method in methods {
            let (on_device, a) = time(device, reps, || {
                Ok(linalg::damped_inverse_tensor(&stat, DAMPING, method)?)
            })?;
            let (via_host, b) = time(device, reps, || {
                let inv = linalg::damped_inverse(&linalg::to_mat(&stat)?, DAMPING, method)?;
                Ok(linalg::to_tensor(&inv, stat.dtype(), device)?)
            })?;
            let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
            let largest = b.abs()?.max_all()?.to_scalar::<f64>()?;
            let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            let eye = Tensor::eye(n, DType::F64, device)?;
            let damped = (stat.to_dtype(DType::F64)? + (&eye * DAMPING)?)?;
            let residual = (damped.matmul(&a)? - eye)?.abs()?.max_all()?;
            out.push(InverseBench {
                n,
                method,
                on_device,
                via_host,
                difference: diff / largest.max(f64::MIN_POSITIVE),
                residual: residual.to_scalar::<f64>()?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_give_the_same_inverse_for_every_size_and_method() {
        let methods = [DenseMethod::Cholesky, DenseMethod::Eigen];
        let rows = run(&Device::Cpu, &[5, 12], &methods, 1).unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows {
            assert!(r.on_device > 0.0 && r.via_host > 0.0, "{r:?}");
            assert!(r.difference < 1e-6 && r.residual < 1e-3, "{r:?}");
        }
        assert!(run(&Device::Cpu, &[0], &methods, 1).is_err());
    }
}
