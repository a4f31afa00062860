//! One thread count for everything: candle's gemm and element-wise ops (the vendored
//! candle-core runs those on rayon, see `third_party/README.md`), our kernels and faer (the
//! K-FAC family) all use rayon's global pool. Setting it before any work keeps them from
//! oversubscribing the cores and makes runs repeatable for a given count.

/// Sets the thread count; `None` keeps rayon's default (all cores) but still pins it so
/// candle and rayon agree. Call once, before any tensor work.
pub fn configure(threads: Option<usize>) -> anyhow::Result<usize> {
    let n = threads.unwrap_or_else(crate::train::machine_load::cores);
    anyhow::ensure!(n > 0, "--threads must be at least 1");
    // Writing the environment races with readers on other threads (candle reads this variable
    // on every matmul), so write only when it changes: at start-up, before any tensor work.
    if std::env::var("RAYON_NUM_THREADS").ok() != Some(n.to_string()) {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // A second call (tests) finds the pool built already; the variable above still applies.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        // The training step runs on a worker (`on_pool`); backprop's graph walk recurses.
        .stack_size(64 << 20)
        .build_global();
    Ok(n)
}

/// Runs `f` on a worker of the global pool, which then counts as one of its threads.
///
/// Called from outside the pool, every parallel op would hand its work to the pool's threads
/// and put the caller to sleep until they finish: a sleep and a wake-up per op, and on a
/// 2-core machine the caller idles while 2 workers run. On a worker, the op splits its work
/// with the other workers and the caller does its share.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    // `scope` runs its body on a pool worker (it injects it when called from outside).
    rayon::scope(|_| f())
}
