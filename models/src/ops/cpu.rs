//! What every CPU kernel here needs: NHWC dimensions, contiguous slices, and dispatch over the
//! float types (f32 for training, f64 for oracle tests).

use candle_core::{CpuStorage, Layout, Result, Shape, WithDType};

/// A kernel over contiguous inputs of one float type; the first input's shape is `dims`.
pub(crate) trait Kernel {
    const NAME: &'static str;
    fn run<T: WithDType>(
        &self,
        inputs: &[&[T]],
        dims: (usize, usize, usize, usize),
    ) -> Result<(Vec<T>, Shape)>;
}

fn dims4(l: &Layout, op: &str) -> Result<(usize, usize, usize, usize)> {
    match *l.shape().dims() {
        [a, b, c, d] => Ok((a, b, c, d)),
        ref d => candle_core::bail!("{op}: expected a 4-d NHWC tensor, got shape {d:?}"),
    }
}

fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        // `as_slice` also rejects an input of another type than the first.
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// Runs `k` on `inputs` in their float type.
pub(crate) fn run_float<K: Kernel>(
    k: &K,
    inputs: &[(&CpuStorage, &Layout)],
) -> Result<(CpuStorage, Shape)> {
    let dims = dims4(inputs[0].1, K::NAME)?;
    fn slices<'a, T: WithDType>(
        inputs: &[(&'a CpuStorage, &Layout)],
        op: &str,
    ) -> Result<Vec<&'a [T]>> {
        inputs
            .iter()
            .map(|(s, l)| contiguous::<T>(s, l, op))
            .collect()
    }
    match inputs[0].0 {
        CpuStorage::F32(_) => {
            let (v, sh) = k.run(&slices::<f32>(inputs, K::NAME)?, dims)?;
            Ok((CpuStorage::F32(v), sh))
        }
        CpuStorage::F64(_) => {
            let (v, sh) = k.run(&slices::<f64>(inputs, K::NAME)?, dims)?;
            Ok((CpuStorage::F64(v), sh))
        }
        _ => candle_core::bail!("{}: only f32 and f64 are supported", K::NAME),
    }
}
