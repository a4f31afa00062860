//! Training-mode batch normalisation over the channel (last) axis of `[R, C]` rows as one
//! candle op with a hand-written backward. Built from candle's elementwise ops it took about ten
//! ops forward and twenty backward per layer, each a pass over the activations and a fresh
//! buffer; here it is two passes forward and two backward.
//!
//! Forward: `μ, σ² = mean, biased variance per channel`, `x̂ = (x−μ)/√(σ²+ε)`, `y = γx̂ + β`.
//! Backward: `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ/√(σ²+ε) · (dy − dβ/R − x̂·dγ/R)`.
//!
//! [`batch_norm_relu`] is `max(y, 0)` in the same passes: a separate ReLU read and wrote the
//! activations once more forward and three times more backward, where here the backward pass
//! recomputes `y` from `x` (bit for bit the forward's value) and keeps `dy` where `y > 0`.

use std::sync::{Arc, Mutex};

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::composed;
use super::cpu::par_fill;
use super::native;
use super::op_times::{dims_text, timed};
use super::relu;

/// Rows per parallel chunk: large enough to amortise the per-chunk channel sums.
const CHUNK_ROWS: usize = 256;

/// The batch statistics of the last forward pass, for the running averages.
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchStats {
    /// Per-channel mean, `C` values.
    pub mean: Vec<f64>,
    /// Per-channel biased (divide by R) variance, `C` values.
    pub var: Vec<f64>,
}

/// The per-channel mean and biased variance (divide by `R`) of a training batch, detached,
/// for the running averages.
pub struct Moments {
    /// `[C]`.
    pub mean: Tensor,
    /// `[C]`.
    pub var: Tensor,
    /// Rows `R` they were taken over.
    pub rows: usize,
}

/// Training-mode batch norm `y = γ(x−μ)/√(σ²+ε) + β` of rows `x: [R, C]` with the batch's
/// statistics, which it also returns; differentiable in `x`, `gamma` and `beta`. The CPU kernel
/// on CPU tensors, candle's ops elsewhere.
///
/// # Errors
///
/// When the shapes do not match or the dtype is not f32/f64.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Moments)> {
    batch_norm_with(x, gamma, beta, eps, false)
}

/// `max(y, 0)` of [`batch_norm`]'s `y`, in its passes (gradient 0 where `y ≤ 0`, PyTorch's
/// rule at 0), with the batch's statistics.
///
/// # Errors
///
/// As [`batch_norm`].
pub fn batch_norm_relu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Moments)> {
    batch_norm_with(x, gamma, beta, eps, true)
}

/// [`batch_norm`], followed by ReLU if `relu`.
fn batch_norm_with(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Moments)> {
    let rows = x.dim(0)?;
    if !native(x) {
        let (y, mean, var) = composed::batch_norm(x, gamma, beta, eps)?;
        let y = if relu { composed::relu(&y)? } else { y };
        return Ok((y, Moments { mean, var, rows }));
    }
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let y = batch_norm_train(x, gamma, beta, eps, relu, &stats)?;
    let st = std::mem::take(&mut *stats.lock().expect("batch-norm statistics lock"));
    let c = st.mean.len();
    let moment = |v: Vec<f64>| Tensor::from_vec(v, c, x.device())?.to_dtype(x.dtype());
    Ok((
        y,
        Moments {
            mean: moment(st.mean)?,
            var: moment(st.var)?,
            rows,
        },
    ))
}

/// Training-mode batch norm `y = γ(x−μ)/√(σ²+ε) + β` for `x: [R, C]` (made contiguous),
/// `gamma`, `beta: [C]`, with the batch's per-channel mean and biased variance; those land in
/// `stats`; with `relu`, `max(y, 0)`. Differentiable in `x`, `gamma` and `beta`.
///
/// # Errors
///
/// When the shapes do not match, the dtype is not f32/f64 or the tensors are not on the CPU.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    stats: &Arc<Mutex<BatchStats>>,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BatchNormTrain {
            eps,
            relu,
            own: Mutex::default(),
            report: stats.clone(),
        },
    )
}

struct BatchNormTrain {
    eps: f64,
    /// Whether the output is `max(y, 0)`.
    relu: bool,
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

/// Per-channel sums over the rows of `a` and `b` (`[R, C]` each): `row(a_row, b_row, s0, s1)`
/// adds one row's terms. Each chunk of rows sums in `T`, so the row loop vectorises; the chunks
/// combine in f64, so f32 sums lose nothing over more than `CHUNK_ROWS` rows, and in chunk
/// order, so the result does not depend on how the threads shared the chunks.
fn channel_sums<T: WithDType>(
    a: &[T],
    b: &[T],
    c: usize,
    row: impl Fn(&[T], &[T], &mut [T], &mut [T]) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let f64s = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    a.par_chunks(CHUNK_ROWS * c)
        .zip(b.par_chunks(CHUNK_ROWS * c))
        .map(|(ac, bc)| {
            let (mut s0, mut s1) = (vec![T::zero(); c], vec![T::zero(); c]);
            for (ar, br) in ac.chunks_exact(c).zip(bc.chunks_exact(c)) {
                row(ar, br, &mut s0, &mut s1);
            }
            (f64s(&s0), f64s(&s1))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(
            (vec![0f64; c], vec![0f64; c]),
            |(mut a0, mut a1), (b0, b1)| {
                a0.iter_mut().zip(&b0).for_each(|(a, b)| *a += b);
                a1.iter_mut().zip(&b1).for_each(|(a, b)| *a += b);
                (a0, a1)
            },
        )
}

/// Per-channel coefficients in the tensor's type, for the element-wise passes.
fn cast<T: WithDType>(v: impl Iterator<Item = f64>) -> Vec<T> {
    v.map(T::from_f64).collect()
}

/// `max(v, 0)` where `RELU`, `v` otherwise.
#[inline(always)]
fn gate<T: WithDType, const RELU: bool>(v: T) -> T {
    if RELU {
        relu::pos(v)
    } else {
        v
    }
}

/// The per-channel `μ` and `γ/√(σ²+ε)` of the element-wise passes, in the tensor's type; the
/// backward pass of the fused ReLU recomputes `y` from the very same values.
fn coefficients<T: WithDType>(st: &BatchStats, gamma: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let scale = (0..gamma.len()).map(|j| gamma[j].to_f64() / (st.var[j] + eps).sqrt());
    (cast(st.mean.iter().copied()), cast(scale))
}

impl BatchNormTrain {
    /// The pass's name in `op_times`.
    fn op_name(&self, backward: bool) -> &'static str {
        match (self.relu, backward) {
            (false, false) => "batch_norm",
            (false, true) => "batch_norm backward",
            (true, false) => "batch_norm+relu",
            (true, true) => "batch_norm+relu backward",
        }
    }

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
        let shift = &x[..c];
        let (s, ss) = channel_sums(x, x, c, |xr, _, s0, s1| {
            let terms = s0.iter_mut().zip(s1.iter_mut()).zip(xr.iter().zip(shift));
            for ((a, b), (&v, &sh)) in terms {
                let d = v - sh;
                *a += d;
                *b += d * d;
            }
        });
        let rf = r as f64;
        let st = BatchStats {
            mean: (0..c).map(|j| shift[j].to_f64() + s[j] / rf).collect(),
            var: (0..c)
                .map(|j| (ss[j] / rf - (s[j] / rf).powi(2)).max(0.0))
                .collect(),
        };
        let y = if self.relu {
            Self::normalised::<T, true>(x, gamma, beta, &st, self.eps)
        } else {
            Self::normalised::<T, false>(x, gamma, beta, &st, self.eps)
        };
        *self.report.lock().expect("batch-norm statistics lock") = st.clone();
        *self.own.lock().expect("batch-norm statistics lock") = st;
        Ok(y)
    }

    /// `y = (x − μ)·scale + β` (ReLU'd where `RELU`), with `x − μ` formed in T: exact enough
    /// even when |μ| ≫ σ.
    fn normalised<T: WithDType, const RELU: bool>(
        x: &[T],
        gamma: &[T],
        be: &[T],
        st: &BatchStats,
        eps: f64,
    ) -> Vec<T> {
        let c = gamma.len();
        let (mu, sc) = coefficients(st, gamma, eps);
        let fill = |i: usize, dst: &mut [MaybeUninit<T>]| {
            let src = &x[i * CHUNK_ROWS * c..];
            for (d, s) in dst.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                let coef = mu.iter().zip(sc.iter().zip(be));
                for ((d, &v), (&m, (&k, &b))) in d.iter_mut().zip(s).zip(coef) {
                    d.write(gate::<T, RELU>((v - m) * k + b));
                }
            }
        };
        // SAFETY: every row of every chunk is written above.
        unsafe { par_fill(x.len(), CHUNK_ROWS * c, fill) }
    }

    /// `(dx, dγ, dβ)` from `x`, `dy`, `γ`, `β` and the forward pass's statistics.
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        dy: &[T],
        gamma: &[T],
        beta: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let c = gamma.len();
        let st = self.own.lock().expect("batch-norm statistics lock").clone();
        if dy.len() != x.len() || st.mean.len() != c || beta.len() != c {
            candle_core::bail!("batch_norm backward: shapes do not match the forward pass");
        }
        Ok(if self.relu {
            Self::gradients::<T, true>(x, dy, gamma, beta, &st, self.eps)
        } else {
            Self::gradients::<T, false>(x, dy, gamma, beta, &st, self.eps)
        })
    }

    /// The backward pass proper; where `RELU`, `dy` counts only where the forward's `y > 0`.
    fn gradients<T: WithDType, const RELU: bool>(
        x: &[T],
        dy: &[T],
        gamma: &[T],
        beta: &[T],
        st: &BatchStats,
        eps: f64,
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let c = gamma.len();
        let rf = (x.len() / c) as f64;
        let inv_std: Vec<f64> = st.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let (mu, sc) = coefficients(st, gamma, eps);
        // The gradient reaching y: dy, or ReLU's where the fused ReLU follows, from y
        // recomputed exactly as the forward pass formed it.
        let through = |v: T, g: T, m: T, k: T, b: T| {
            if RELU {
                relu::through(g, (v - m) * k + b)
            } else {
                g
            }
        };
        // dβ = Σ dy and Σ dy·(x − μ) (= dγ·σ).
        let (dbeta, dyxc) = channel_sums(x, dy, c, |xr, gr, sb, sg| {
            let terms = sb
                .iter_mut()
                .zip(sg.iter_mut())
                .zip(xr.iter().zip(gr).zip(mu.iter().zip(sc.iter().zip(beta))));
            for ((b, g), ((&v, &dy), (&m, (&k, &be)))) in terms {
                let dy = through(v, dy, m, k, be);
                *b += dy;
                *g += dy * (v - m);
            }
        });
        let dgamma: Vec<f64> = (0..c).map(|j| dyxc[j] * inv_std[j]).collect();
        // dx = k·dy + kx·(x − μ) + k0 per channel, from
        // dx = γ/σ · (dy − dβ/R − x̂·dγ/R) with x̂ = (x − μ)/σ.
        let k: Vec<f64> = (0..c).map(|j| gamma[j].to_f64() * inv_std[j]).collect();
        let (kd, kx, k0): (Vec<T>, Vec<T>, Vec<T>) = (
            cast(k.iter().copied()),
            cast((0..c).map(|j| -k[j] * inv_std[j] * dgamma[j] / rf)),
            cast((0..c).map(|j| -k[j] * dbeta[j] / rf)),
        );
        let fill = |i: usize, dst: &mut [MaybeUninit<T>]| {
            let at = i * CHUNK_ROWS * c;
            let rows = dst
                .chunks_exact_mut(c)
                .zip(x[at..].chunks_exact(c).zip(dy[at..].chunks_exact(c)));
            for (d, (xr, gr)) in rows {
                let coef = kd.iter().zip(&kx).zip(k0.iter().zip(&mu));
                let fwd = sc.iter().zip(beta);
                for (((d, (&v, &dy)), ((&a, &b), (&c0, &m))), (&ks, &be)) in
                    d.iter_mut().zip(xr.iter().zip(gr)).zip(coef).zip(fwd)
                {
                    d.write(a * through(v, dy, m, ks, be) + b * (v - m) + c0);
                }
            }
        };
        // SAFETY: every row of every chunk is written above.
        let dx = unsafe { par_fill(x.len(), CHUNK_ROWS * c, fill) };
        (dx, cast(dgamma.into_iter()), cast(dbeta.into_iter()))
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
        let out = timed(
            self.op_name(false),
            (|| dims_text(shape.dims()), 0.0),
            || {
                Ok(match s1 {
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
                })
            },
        )?;
        Ok((out, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (cs, cl) = gamma.storage_and_layout();
        let (bs, bl) = beta.storage_and_layout();
        let (xs, gs, cs, bs) = match (&*xs, &*gs, &*cs, &*bs) {
            (
                candle_core::Storage::Cpu(a),
                candle_core::Storage::Cpu(b),
                candle_core::Storage::Cpu(c),
                candle_core::Storage::Cpu(d),
            ) => (a, b, c, d),
            _ => candle_core::bail!("batch_norm backward: CPU tensors only"),
        };
        let dev = x.device();
        let c = gamma.elem_count();
        macro_rules! run {
            ($t:ty) => {{
                let (dx, dg, db) = self.backward::<$t>(
                    slice(xs, xl)?,
                    slice(gs, gl)?,
                    slice(cs, cl)?,
                    slice(bs, bl)?,
                )?;
                (
                    Tensor::from_vec(dx, x.shape(), dev)?,
                    Tensor::from_vec(dg, c, dev)?,
                    Tensor::from_vec(db, c, dev)?,
                )
            }};
        }
        let (dx, dg, db) = timed(self.op_name(true), (|| dims_text(x.dims()), 0.0), || {
            Ok(match xs {
                CpuStorage::F32(_) => run!(f32),
                CpuStorage::F64(_) => run!(f64),
                _ => candle_core::bail!("batch_norm backward: only f32 and f64 are supported"),
            })
        })?;
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

    /// Asserts that `⟨w, ours⟩` and `⟨w, theirs⟩` have the same gradient (to 1e-10) with
    /// respect to each of `vars`; returns the oracle's gradients.
    fn same_gradients(
        ours: &Tensor,
        theirs: &Tensor,
        w: &Tensor,
        vars: &[&Var],
    ) -> Result<candle_core::backprop::GradStore> {
        let g1 = (ours * w)?.sum_all()?.backward()?;
        let g2 = (theirs * w)?.sum_all()?.backward()?;
        for v in vars {
            let (a, b) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            let d = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(d < 1e-10, "gradient of a {:?} input", v.shape());
        }
        Ok(g2)
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
            false,
            &stats,
        )?;
        let theirs = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&ours, &theirs)? < 1e-12);
        let g2 = same_gradients(&ours, &theirs, &w, &[&x, &gamma, &beta])?;
        let st = stats.lock().unwrap().clone();
        let mean = x.as_tensor().mean(0)?.to_vec1::<f64>()?;
        assert!(st
            .mean
            .iter()
            .zip(&mean)
            .all(|(a, b)| (a - b).abs() < 1e-12));
        // f32 runs too, within f32 precision.
        let x32 = x.as_tensor().to_dtype(DType::F32)?;
        let y32 = batch_norm_train(
            &x32,
            &gamma.to_dtype(DType::F32)?,
            &beta.to_dtype(DType::F32)?,
            1e-5,
            false,
            &stats,
        )?;
        let want = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        assert!(diff(&y32.to_dtype(DType::F64)?, &want)? < 1e-5);
        // The f32 gradients (what training uses; sums in f32 per chunk of rows) against the
        // f64 oracle's, relative to their size.
        let vars32: Vec<Var> = [&x, &gamma, &beta]
            .iter()
            .map(|v| Var::from_tensor(&v.to_dtype(DType::F32)?))
            .collect::<Result<_>>()?;
        let y32 = batch_norm_train(
            vars32[0].as_tensor(),
            vars32[1].as_tensor(),
            vars32[2].as_tensor(),
            1e-5,
            false,
            &stats,
        )?;
        let g32 = (y32 * w.to_dtype(DType::F32)?)?.sum_all()?.backward()?;
        for (v32, v) in vars32.iter().zip([&x, &gamma, &beta]) {
            let a = g32.get(v32.as_tensor()).unwrap().to_dtype(DType::F64)?;
            let b = g2.get(v.as_tensor()).unwrap();
            let scale = b.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(
                diff(&a, b)? < 1e-4 * scale,
                "f32 gradient of a {:?} input",
                v.shape()
            );
        }
        Ok(())
    }

    #[test]
    fn the_fused_relu_is_relu_of_the_output_with_its_gradients() -> Result<()> {
        // relu(reference) in candle's ops is the oracle; β shifted so that about a third of the
        // outputs are cut off.
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f64, 2.0, (700, 5), &dev)? + 3.0)?)?;
        let gamma = Var::from_tensor(&Tensor::randn(1f64, 0.3, 5, &dev)?)?;
        let beta = Var::from_tensor(&(Tensor::randn(0f64, 0.3, 5, &dev)? - 0.4)?)?;
        let w = Tensor::randn(0f64, 1.0, (700, 5), &dev)?;
        let (ours, m) = batch_norm_relu(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
        let theirs = reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?.relu()?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&ours, &theirs)? < 1e-12);
        let cut = theirs
            .eq(0f64)?
            .to_dtype(DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()?;
        assert!(cut > 0.1 && cut < 0.9, "{cut} of the outputs cut off");
        let mean = x.as_tensor().mean(0)?;
        assert!(diff(&m.mean, &mean)? < 1e-12);
        same_gradients(&ours, &theirs, &w, &[&x, &gamma, &beta])?;
        Ok(())
    }
}
