//! Which implementation element-wise work runs: the workspace's CPU kernels (candle custom ops
//! over the CPU's memory), or the same maths composed from candle's device-generic tensor ops,
//! which is what a CUDA device runs. A tensor off the CPU always takes the composed path;
//! [`composed_ops`] makes the calling thread take it on the CPU too, so that tests check the
//! GPU's code against the kernels on every run. The `models` crate's ops follow the same
//! switch.

use std::cell::Cell;
use std::marker::PhantomData;

use candle_core::Tensor;

thread_local! {
    static FORCED: Cell<bool> = const { Cell::new(false) };
}

/// Whether work on `t` runs a CPU kernel (rather than composed tensor ops).
pub fn native(t: &Tensor) -> bool {
    t.device().is_cpu() && !FORCED.with(Cell::get)
}

/// While alive, the CPU kernels of this workspace (the models' ops, the optimizers' fused
/// updates) called on this thread run composed from candle's device-generic ops, as on a GPU.
/// Forward and backward passes and optimizer steps must run on the thread that made it.
#[must_use = "the composed ops apply only while the guard lives"]
pub struct ComposedOps {
    previous: bool,
    /// Thread-bound: the flag it restores belongs to this thread.
    _thread: PhantomData<*const ()>,
}

/// Makes this thread run the composed path (what a CUDA device runs) until the returned guard
/// drops.
pub fn composed_ops() -> ComposedOps {
    ComposedOps {
        previous: FORCED.with(|f| f.replace(true)),
        _thread: PhantomData,
    }
}

impl Drop for ComposedOps {
    fn drop(&mut self) {
        FORCED.with(|f| f.set(self.previous));
    }
}
