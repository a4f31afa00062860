//! One thread count for everything: candle's gemm and ops read `RAYON_NUM_THREADS` at each
//! call, and our kernels (and faer, for the K-FAC family) use rayon's global pool. Setting
//! both before any work keeps them from oversubscribing the cores and makes runs repeatable
//! for a given count.

/// Sets the thread count; `None` keeps rayon's default (all cores) but still pins it so
/// candle and rayon agree. Call once, before any tensor work.
pub fn configure(threads: Option<usize>) -> anyhow::Result<usize> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(n > 0, "--threads must be at least 1");
    // Writing the environment races with readers on other threads (candle reads this variable
    // on every matmul), so write only when it changes: at start-up, before any tensor work.
    if std::env::var("RAYON_NUM_THREADS").ok() != Some(n.to_string()) {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // A second call (tests) finds the pool built already; the variable above still applies.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}
