//! The `skfac` binary allocates through mimalloc and keeps freed memory in the process.
//!
//! A training step allocates and frees the same large tensors every iteration (candle's backward
//! allocates a fresh, zeroed buffer for every gradient it accumulates). With glibc's malloc,
//! large blocks are `mmap`ed and handed back on free, so every step faulted fresh zero pages in
//! again: about half of ResNet-8's step at batch 32. mimalloc reuses its arenas; with purging
//! off it never returns them, which is what a loop that needs the same memory every step wants.
//! Measured with `just bench-step` (README, "Training-step speed").

/// mimalloc's `mi_option_purge_delay` (its ordinal in `mi_option_e`, mimalloc v3's
/// `include/mimalloc.h`; libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns mimalloc's purging off. Call once at start-up; harmless if mimalloc is not the global
/// allocator (it then only configures an unused heap).
pub fn keep_freed_memory() {
    // SAFETY: sets a process-wide integer option; mimalloc reads it when deciding to purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
