//! Training-mode batch normalisation over the channel (last) axis of `[R, C]` rows as one
//! candle op with a hand-written backward. Built from candle's elementwise ops it took about ten
//! ops forward and twenty backward per layer, each a pass over the activations and a fresh
//! buffer; here it is two passes forward and two backward.
//!
//! Forward: `μ, σ² = mean, biased variance per channel`, `x̂ = (x−μ)/√(σ²+ε)`, `y = γx̂ + β`.
//! Backward: `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ/√(σ²+ε) · (dy − dβ/R − x̂·dγ/R)`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Rows per parallel chunk: large enough to amortise the per-chunk channel sums.
const CHUNK_ROWS: usize = 256;

/// The batch statistics of the last forward pass, for the running averages.
#[derive(Clone, Debug, Default)]
pub struct BatchStats {
    pub mean: Vec<f64>,
    /// Biased (divide by R) variance.
    pub var: Vec<f64>,
    pub rows: usize,
}

/// `y` for `x: [R, C]` (contiguous), `gamma`, `beta: [C]`; the batch statistics land in `stats`.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    stats: &Arc<Mutex<BatchStats>>,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BatchNormTrain {
            eps,
            own: Mutex::default(),
            report: stats.clone(),
        },
    )
}

struct BatchNormTrain {
    eps: f64,
    /// This pass's statistics, for its backward (even if the layer runs again meanwhile).
    own: Mutex<BatchStats>,
    /// Where the layer reads them for its running averages.
    report: Arc<Mutex<BatchStats>>,
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("batch_norm: inputs must be contiguous"),
    }
}

/// Per-channel sums of `f(row, channel, value)` over all rows, in f64, in parallel.
fn channel_sums<T: WithDType>(
    x: &[T],
    c: usize,
    f: impl Fn(usize, f64) -> [f64; 2] + Sync,
) -> (Vec<f64>, Vec<f64>) {
    x.par_chunks(CHUNK_ROWS * c)
        .map(|chunk| {
            let (mut s0, mut s1) = (vec![0f64; c], vec![0f64; c]);
            for row in chunk.chunks_exact(c) {
                for (j, v) in row.iter().enumerate() {
                    let [a, b] = f(j, v.to_f64());
                    s0[j] += a;
                    s1[j] += b;
                }
            }
            (s0, s1)
        })
        .reduce(
            || (vec![0f64; c], vec![0f64; c]),
            |(mut a0, mut a1), (b0, b1)| {
                a0.iter_mut().zip(&b0).for_each(|(a, b)| *a += b);
                a1.iter_mut().zip(&b1).for_each(|(a, b)| *a += b);
                (a0, a1)
            },
        )
}

impl BatchNormTrain {
    fn forward<T: WithDType>(&self, x: &[T], gamma: &[T], beta: &[T]) -> Result<Vec<T>> {
        let c = gamma.len();
        if c == 0 || !x.len().is_multiple_of(c) || beta.len() != c {
            candle_core::bail!(
                "batch_norm: {} values do not form rows of {c} channels",
                x.len()
            );
        }
        let r = x.len() / c;
        // Shifted by the first row for a stable variance in one pass.
        let shift: Vec<f64> = x[..c].iter().map(|v| v.to_f64()).collect();
        let (s, ss) = channel_sums(x, c, |j, v| {
            let d = v - shift[j];
            [d, d * d]
        });
        let mean: Vec<f64> = (0..c).map(|j| shift[j] + s[j] / r as f64).collect();
        let var: Vec<f64> = (0..c)
            .map(|j| (ss[j] / r as f64 - (s[j] / r as f64).powi(2)).max(0.0))
            .collect();
        let scale: Vec<f64> = (0..c)
            .map(|j| gamma[j].to_f64() / (var[j] + self.eps).sqrt())
            .collect();
        let shift_out: Vec<f64> = (0..c)
            .map(|j| beta[j].to_f64() - mean[j] * scale[j])
            .collect();
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(CHUNK_ROWS * c)
            .zip(x.par_chunks(CHUNK_ROWS * c))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                    for j in 0..c {
                        d[j] = T::from_f64(s[j].to_f64() * scale[j] + shift_out[j]);
                    }
                }
            });
        let st = BatchStats { mean, var, rows: r };
        *self.report.lock().expect("batch-norm statistics lock") = st.clone();
        *self.own.lock().expect("batch-norm statistics lock") = st;
        Ok(y)
    }

    /// `(dx, dγ, dβ)` from `x`, `dy`, `γ` and the forward pass's statistics.
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        dy: &[T],
        gamma: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let c = gamma.len();
        let st = self.own.lock().expect("batch-norm statistics lock").clone();
        if dy.len() != x.len() || st.mean.len() != c {
            candle_core::bail!("batch_norm backward: shapes do not match the forward pass");
        }
        let r = x.len() / c;
        let inv_std: Vec<f64> = st.var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let (dbeta, dgamma) = {
            let xh = |j: usize, v: f64| (v - st.mean[j]) * inv_std[j];
            // Two sums over the same rows of x and dy: zip them row-wise.
            let pairs: Vec<(Vec<f64>, Vec<f64>)> = x
                .par_chunks(CHUNK_ROWS * c)
                .zip(dy.par_chunks(CHUNK_ROWS * c))
                .map(|(xs, gs)| {
                    let (mut sb, mut sg) = (vec![0f64; c], vec![0f64; c]);
                    for (xr, gr) in xs.chunks_exact(c).zip(gs.chunks_exact(c)) {
                        for j in 0..c {
                            let g = gr[j].to_f64();
                            sb[j] += g;
                            sg[j] += g * xh(j, xr[j].to_f64());
                        }
                    }
                    (sb, sg)
                })
                .collect();
            let mut sb = vec![0f64; c];
            let mut sg = vec![0f64; c];
            for (b, g) in pairs {
                sb.iter_mut().zip(&b).for_each(|(a, v)| *a += v);
                sg.iter_mut().zip(&g).for_each(|(a, v)| *a += v);
            }
            (sb, sg)
        };
        let k: Vec<f64> = (0..c).map(|j| gamma[j].to_f64() * inv_std[j]).collect();
        let rf = r as f64;
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(CHUNK_ROWS * c)
            .zip(
                x.par_chunks(CHUNK_ROWS * c)
                    .zip(dy.par_chunks(CHUNK_ROWS * c)),
            )
            .for_each(|(d, (xs, gs))| {
                for (dr, (xr, gr)) in d
                    .chunks_exact_mut(c)
                    .zip(xs.chunks_exact(c).zip(gs.chunks_exact(c)))
                {
                    for j in 0..c {
                        let xh = (xr[j].to_f64() - st.mean[j]) * inv_std[j];
                        dr[j] = T::from_f64(
                            k[j] * (gr[j].to_f64() - dbeta[j] / rf - xh * dgamma[j] / rf),
                        );
                    }
                }
            });
        let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        Ok((dx, cast(dgamma), cast(dbeta)))
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = l1.shape().clone();
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward::<f32>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )?),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward::<f64>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )?),
            _ => candle_core::bail!("batch_norm: only f32 and f64 are supported"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (cs, cl) = gamma.storage_and_layout();
        let (xs, gs, cs) = match (&*xs, &*gs, &*cs) {
            (
                candle_core::Storage::Cpu(a),
                candle_core::Storage::Cpu(b),
                candle_core::Storage::Cpu(c),
            ) => (a, b, c),
            _ => candle_core::bail!("batch_norm backward: CPU tensors only"),
        };
        let dev = x.device();
        let c = gamma.elem_count();
        macro_rules! run {
            ($t:ty) => {{
                let (dx, dg, db) =
                    self.backward::<$t>(slice(xs, xl)?, slice(gs, gl)?, slice(cs, cl)?)?;
                (
                    Tensor::from_vec(dx, x.shape(), dev)?,
                    Tensor::from_vec(dg, c, dev)?,
                    Tensor::from_vec(db, c, dev)?,
                )
            }};
        }
        let (dx, dg, db) = match xs {
            CpuStorage::F32(_) => run!(f32),
            CpuStorage::F64(_) => run!(f64),
            _ => candle_core::bail!("batch_norm backward: only f32 and f64 are supported"),
        };
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The textbook batch norm in candle's own ops: the oracle for values and gradients.
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim(0)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(0)?;
        centred
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&gamma.unsqueeze(0)?)?
            .broadcast_add(&beta.unsqueeze(0)?)
    }

    #[test]
    fn values_and_gradients_match_the_composed_ops() -> Result<()> {
        let dev = Device::Cpu;
        // More rows than one chunk, so the parallel sums are exercised; an offset mean tests
        // the shifted variance.
        let x = Var::from_tensor(&(Tensor::randn(0f64, 2.0, (700, 5), &dev)? + 3.0)?)?;
        let gamma = Var::from_tensor(&Tensor::randn(1f64, 0.3, 5, &dev)?)?;
        let beta = Var::from_tensor(&Tensor::randn(0f64, 0.3, 5, &dev)?)?;
        let w = Tensor::randn(0f64, 1.0, (700, 5), &dev)?;
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        let ours = batch_norm_train(
            x.as_tensor(),
            gamma.as_tensor(),
            beta.as_tensor(),
            1e-5,
            &stats,
        )?;
        let theirs = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&ours, &theirs)? < 1e-12);
        let g1 = (ours * &w)?.sum_all()?.backward()?;
        let g2 = (theirs * &w)?.sum_all()?.backward()?;
        for v in [&x, &gamma, &beta] {
            let (a, b) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(diff(a, b)? < 1e-10, "gradient of a {:?} input", v.shape());
        }
        let st = stats.lock().unwrap().clone();
        let mean = x.as_tensor().mean(0)?.to_vec1::<f64>()?;
        assert!(st
            .mean
            .iter()
            .zip(&mean)
            .all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(st.rows, 700);
        // f32 runs too, within f32 precision.
        let x32 = x.as_tensor().to_dtype(DType::F32)?;
        let y32 = batch_norm_train(
            &x32,
            &gamma.to_dtype(DType::F32)?,
            &beta.to_dtype(DType::F32)?,
            1e-5,
            &stats,
        )?;
        let want = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        assert!(diff(&y32.to_dtype(DType::F64)?, &want)? < 1e-5);
        Ok(())
    }
}
