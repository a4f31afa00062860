//! Wall-clock per CPU kernel and shape, when switched on: where a step's time goes on a
//! machine without a profiler (the lent GPU machines have no `perf`). Off, each kernel pays one
//! relaxed atomic load; on, a clock read and a lock per call. Candle runs CPU ops one after
//! another on the calling thread (the kernels parallelise inside), so the times add up to the
//! part of a step these kernels take; candle's own ops (matmul, reductions, the element-wise
//! ones) are not counted, except the matmuls of `matmul_t`'s backward pass, timed as one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static RECORDING: AtomicBool = AtomicBool::new(false);

/// Per (kernel, shape): calls, their total time, and the floating-point operations of one.
type Record = BTreeMap<(&'static str, String), (u64, Duration, f64)>;

static TIMES: Mutex<Record> = Mutex::new(BTreeMap::new());

/// One kernel at one shape: how often it ran and for how long, since the last
/// [`take_op_times`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// The kernel, e.g. `conv2d dW`.
    pub op: &'static str,
    /// Its operands as the kernel describes them, e.g. `128×32×32×16 → 16, 3×3/1`.
    pub shape: String,
    /// Calls over the recording.
    pub calls: u64,
    /// Their wall-clock, summed.
    pub seconds: f64,
    /// Floating-point operations per call, for a product (`2·m·n·k`; a convolution's as its
    /// im2col product); 0 for the element-wise kernels.
    pub flops: f64,
}

/// Starts (or stops) recording each CPU kernel's wall-clock.
pub fn record_op_times(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// What was recorded since the last call, largest total first; clears the record.
pub fn take_op_times() -> Vec<OpTime> {
    let taken = std::mem::take(&mut *lock());
    let mut v: Vec<OpTime> = taken
        .into_iter()
        .map(|((op, shape), (calls, d, flops))| OpTime {
            op,
            shape,
            calls,
            seconds: d.as_secs_f64(),
            flops,
        })
        .collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

fn lock() -> std::sync::MutexGuard<'static, Record> {
    // A panic while holding the lock leaves the map whole (one insert or add at a time).
    TIMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`; while recording, adds its wall-clock to `op` at the shape `shape()` describes,
/// with `flops` operations a call (0 if none are counted).
pub(crate) fn timed<R>(
    op: &'static str,
    (shape, flops): (impl FnOnce() -> String, f64),
    f: impl FnOnce() -> R,
) -> R {
    if !RECORDING.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    let spent = start.elapsed();
    let mut times = lock();
    let e = times.entry((op, shape())).or_default();
    e.0 += 1;
    e.1 += spent;
    e.2 = flops;
    r
}

/// `a×b×c` for dims.
pub(crate) fn dims_text(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}
