//! ReLU, and ReLU of a sum (a residual block's output), as single passes with a one-pass
//! backward. Candle's `relu` backward took four passes and three fresh buffers (zeros, `x ≥ 0`
//! as u8, the mask cast back to float, the product); here `dx = dy` where the output is
//! positive and 0 elsewhere (PyTorch's rule at 0).

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::composed;
use super::cpu::{flat, float_dispatch, par_fill};
use super::native;
use super::op_times::{dims_text, timed};

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

/// `max(x, 0)` element-wise, any shape; differentiable (gradient 0 at 0).
///
/// # Errors
///
/// When the dtype is not f32/f64.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !native(x) {
        return composed::relu(x);
    }
    x.contiguous()?.apply_op1(Relu)
}

/// `max(a + b, 0)` element-wise for same-shaped `a` and `b`, differentiable in both.
///
/// # Errors
///
/// When the shapes or dtypes differ or the dtype is not f32/f64.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape() != b.shape() {
        candle_core::bail!(
            "add_relu: shapes {:?} and {:?} differ",
            a.shape(),
            b.shape()
        );
    }
    if !native(a) {
        return composed::add_relu(a, b);
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `out[i] = f(i)` for `len` elements, in parallel.
fn build<T: WithDType>(len: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let fill = |c: usize, dst: &mut [MaybeUninit<T>]| {
        for (i, d) in dst.iter_mut().enumerate() {
            d.write(f(c * CHUNK + i));
        }
    };
    // SAFETY: every element of every chunk is written above.
    unsafe { par_fill(len, CHUNK, fill) }
}

/// `max(v, 0)`.
pub(super) fn pos<T: WithDType>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// The gradient `g` where the output `y` is positive.
pub(super) fn through<T: WithDType>(g: T, y: T) -> T {
    if y > T::zero() {
        g
    } else {
        T::zero()
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu-fused"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = timed("relu", (|| dims_text(l.dims()), 0.0), || {
            Ok(float_dispatch!("relu", s, |T| {
                let x = flat::<T>(s, l, "relu")?;
                build(x.len(), |i| pos(x[i]))
            }))
        })?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_grad(grad, res)?))
    }
}

struct AddRelu;

impl Zip for AddRelu {
    const NAME: &'static str = "add_relu";
    fn f<T: WithDType>(a: T, b: T) -> T {
        pos(a + b)
    }
}

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        zip_fwd::<Self>(s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(grad, res)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `dy` where `y > 0`, else 0.
fn relu_grad(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    dy.contiguous()?
        .apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)
}

struct ReluGrad;

impl Zip for ReluGrad {
    const NAME: &'static str = "relu backward";
    fn f<T: WithDType>(g: T, y: T) -> T {
        through(g, y)
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        zip_fwd::<Self>(s1, l1, s2, l2)
    }
}

/// An element-wise function of two same-shaped float tensors.
trait Zip {
    const NAME: &'static str;
    fn f<T: WithDType>(a: T, b: T) -> T;
}

/// `Z::f` over the elements of two same-shaped inputs, in parallel.
fn zip_fwd<Z: Zip>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<(CpuStorage, Shape)> {
    if l1.shape() != l2.shape() {
        candle_core::bail!(
            "{}: shapes {:?} and {:?} differ",
            Z::NAME,
            l1.shape(),
            l2.shape()
        );
    }
    let out = timed(Z::NAME, (|| dims_text(l1.dims()), 0.0), || {
        Ok(float_dispatch!(Z::NAME, s1, |T| {
            let (a, b) = (flat::<T>(s1, l1, Z::NAME)?, flat::<T>(s2, l2, Z::NAME)?);
            build(a.len(), |i| Z::f(a[i], b[i]))
        }))
    })?;
    Ok((out, l1.shape().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        // Over one chunk, so the parallel split runs; f64 and f32.
        for dtype in [candle_core::DType::F64, candle_core::DType::F32] {
            let a =
                Var::from_tensor(&Tensor::randn(0f64, 1., (3, 70_000), &dev)?.to_dtype(dtype)?)?;
            let b =
                Var::from_tensor(&Tensor::randn(0f64, 1., (3, 70_000), &dev)?.to_dtype(dtype)?)?;
            let w = Tensor::randn(0f64, 1., (3, 70_000), &dev)?.to_dtype(dtype)?;
            let ours = add_relu(a.as_tensor(), b.as_tensor())?;
            let theirs = (a.as_tensor() + b.as_tensor())?.relu()?;
            let diff = |x: &Tensor, y: &Tensor| -> Result<f64> {
                (x - y)?
                    .abs()?
                    .max_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()
            };
            assert_eq!(diff(&ours, &theirs)?, 0.0);
            assert_eq!(diff(&relu(a.as_tensor())?, &a.as_tensor().relu()?)?, 0.0);
            let g1 = (ours * &w)?.sum_all()?.backward()?;
            let g2 = (theirs * &w)?.sum_all()?.backward()?;
            for v in [&a, &b] {
                let (x, y) = (
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap(),
                );
                assert_eq!(diff(x, y)?, 0.0);
            }
            let g = (relu(a.as_tensor())? * &w)?.sum_all()?.backward()?;
            let want = (a.as_tensor().gt(0.0)?.to_dtype(dtype)? * &w)?;
            assert_eq!(diff(g.get(a.as_tensor()).unwrap(), &want)?, 0.0);
        }
        Ok(())
    }

    #[test]
    fn the_gradient_at_zero_is_zero() -> Result<()> {
        let x = Var::from_tensor(&Tensor::new(&[-1f32, 0.0, 2.0], &Device::Cpu)?)?;
        let g = relu(x.as_tensor())?.sum_all()?.backward()?;
        assert_eq!(
            g.get(x.as_tensor()).unwrap().to_vec1::<f32>()?,
            [0.0, 0.0, 1.0]
        );
        Ok(())
    }
}
