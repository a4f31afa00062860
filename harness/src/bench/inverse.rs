//! `skfac bench-inverse`: one damped inverse `(F + λI)⁻¹` of an n×n statistic, by method and
//! precision, where the statistic lives (cuSOLVER on a GPU, faer on the CPU) and, on a GPU,
//! against a round trip to the host (the copies, faer, the copy back), for K-FAC's dense
//! factors and SKFAC's N×N Woodbury systems. It answers which method and precision are fastest
//! and which side a factor of a given size is cheaper on, and it checks the inverse: by how
//! far `(F + λI)·X` is from `I`, and on a GPU against the host's. `bench/inverse-compare.sh`
//! runs it beside PyTorch's inverses of the same statistic.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use optimizers::curvature::{DenseMethod, InverseDtype};
use optimizers::linalg;

use crate::bench::step::median;

/// The damping of the benchmark's inverses (the paper's λ).
const DAMPING: f64 = 1e-3;

/// One size, method and precision, timed where the statistic lives (and on a GPU via the
/// host too).
#[derive(Clone, Debug)]
pub struct InverseBench {
    pub n: usize,
    pub method: DenseMethod,
    pub precision: InverseDtype,
    /// Median seconds with the statistic inverted where it lives.
    pub on_device: f64,
    /// Median seconds with a round trip to the host, copies included (a GPU only: on the CPU
    /// it is the same computation).
    pub via_host: Option<f64>,
    /// Largest entry of the difference of the two inverses, relative to the largest entry
    /// (a GPU only).
    pub difference: Option<f64>,
    /// Largest entry of `(F + λI)·X − I` for the device's inverse `X`: how well it inverts.
    pub residual: f64,
}

/// A statistic like K-FAC's, `XᵀX/(4n)` for a standard-normal `4n×n` `X`, formed in f32 on
/// `device` (`bench/pytorch_inverse.py` draws the same distribution).
fn statistic(n: usize, device: &Device) -> Result<Tensor> {
    let rows = 4 * n;
    let x = Tensor::randn(0f32, 1.0, (rows, n), device)?;
    Ok((x.t()?.matmul(&x)? / rows as f64)?)
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

/// Times the inverse of an n×n statistic for each of `sizes`, `methods` and `precisions`,
/// `reps` times (each way on a GPU). The thread count must have been configured already.
pub fn run(
    device: &Device,
    sizes: &[usize],
    methods: &[DenseMethod],
    precisions: &[InverseDtype],
    reps: usize,
) -> Result<Vec<InverseBench>> {
    anyhow::ensure!(reps >= 1, "--reps must be at least 1");
    let mut out = Vec::new();
    for &n in sizes {
        anyhow::ensure!(n >= 1, "--sizes takes sizes of at least 1");
        let stat = statistic(n, device)?;
        for &method in methods {
            for &precision in precisions {
                // No fallback to f64: the figure is the precision's own. The statistic is
                // stored in it too, so the residual shows the precision's round-off.
                let dtype = optimizers::linalg::dtype_of(precision);
                let stat = stat.to_dtype(dtype)?;
                let (on_device, a) = time(device, reps, || {
                    Ok(linalg::damped_inverse_in(&stat, DAMPING, method, dtype)?)
                })?;
                let a = a.to_dtype(DType::F64)?;
                let (via_host, difference) = if device.is_cpu() {
                    (None, None)
                } else {
                    let (via_host, b) = time(device, reps, || {
                        let host = stat.to_device(&Device::Cpu)?;
                        let inv = linalg::damped_inverse_in(&host, DAMPING, method, dtype)?;
                        Ok(inv.to_device(device)?)
                    })?;
                    let b = b.to_dtype(DType::F64)?;
                    let largest = b.abs()?.max_all()?.to_scalar::<f64>()?;
                    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
                    (Some(via_host), Some(diff / largest.max(f64::MIN_POSITIVE)))
                };
                let eye = Tensor::eye(n, DType::F64, device)?;
                let damped = (stat.to_dtype(DType::F64)? + (&eye * DAMPING)?)?;
                let residual = (damped.matmul(&a)? - eye)?.abs()?.max_all()?;
                out.push(InverseBench {
                    n,
                    method,
                    precision,
                    on_device,
                    via_host,
                    difference,
                    residual: residual.to_scalar::<f64>()?,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_method_and_precision_inverts_to_its_round_off() {
        let methods = [DenseMethod::Cholesky, DenseMethod::Eigen];
        let precisions = [InverseDtype::F32, InverseDtype::F64];
        let rows = run(&Device::Cpu, &[5, 12], &methods, &precisions, 1).unwrap();
        assert_eq!(rows.len(), 8);
        for r in rows {
            assert!(r.on_device > 0.0 && r.via_host.is_none(), "{r:?}");
            // The residual is the precision's round-off times the damped matrix's condition
            // number (at most (λ_max + λ)/λ ≈ 4e3 here).
            let tol = match r.precision {
                InverseDtype::F32 => 1e-2,
                InverseDtype::F64 => 1e-10,
            };
            assert!(r.residual < tol, "{r:?}");
        }
        assert!(run(&Device::Cpu, &[0], &methods, &precisions, 1).is_err());
    }
}
