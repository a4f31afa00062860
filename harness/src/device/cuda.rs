//! Opening a CUDA device, with errors that say what is missing instead of cudarc's panics.

use anyhow::{Context, Result};
use candle_core::{CudaDevice, Device};
use cudarc::driver::CudaContext;

/// GPU `ordinal`, after checking that the driver loads and that the GPU exists.
pub(super) fn open(ordinal: usize) -> Result<Device> {
    // SAFETY: only tries to dlopen libcuda; cudarc's own loader panics when it is absent.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        anyhow::bail!(
            "--device cuda:{ordinal}: no NVIDIA driver here (libcuda.so did not load); run on a \
             machine with an NVIDIA GPU, or use --device cpu"
        );
    }
    let count = CudaContext::device_count()
        .map_err(|e| anyhow::anyhow!("--device cuda:{ordinal}: the NVIDIA driver failed: {e}"))?;
    anyhow::ensure!(
        (ordinal as i32) < count,
        "--device cuda:{ordinal}: this machine has {count} GPU(s), numbered from 0"
    );
    Device::new_cuda(ordinal).with_context(|| {
        format!(
            "--device cuda:{ordinal}: cannot start CUDA (are cuBLAS, cuRAND and NVRTC on \
             LD_LIBRARY_PATH?)"
        )
    })
}

/// `cuda:N (GPU name)`.
pub(super) fn describe(d: &CudaDevice) -> String {
    let ctx = d.cuda_stream().context().clone();
    let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
    format!("cuda:{} ({name})", ctx.ordinal())
}
