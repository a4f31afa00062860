//! Opening a CUDA device, with errors that say what is missing instead of cudarc's panics.

use anyhow::{Context, Result};
use candle_core::{CudaDevice, Device};
use cudarc::driver::{sys, CudaContext};

use super::DeviceSpec;

/// The GPU `spec` names for the process in `slot` ([`DeviceSpec::ordinal`]), after checking
/// that the driver and NVIDIA's libraries load and that the GPU exists.
pub(super) fn open(spec: DeviceSpec, slot: usize) -> Result<Device> {
    // SAFETY: each only tries to dlopen its library; cudarc's own loader panics when one is
    // absent, on first use (cuSOLVER's would be mid-run, at the first inverse refresh).
    let present = unsafe {
        [
            ("the NVIDIA driver (libcuda.so)", sys::is_culib_present()),
            ("cuBLAS", cudarc::cublas::sys::is_culib_present()),
            ("cuRAND", cudarc::curand::sys::is_culib_present()),
            ("cuSOLVER", cudarc::cusolver::sys::is_culib_present()),
        ]
    };
    if !present[0].1 {
        anyhow::bail!(
            "--device {spec}: no NVIDIA driver here (libcuda.so did not load); run on a \
             machine with an NVIDIA GPU, or use --device cpu"
        );
    }
    let missing: Vec<&str> = present.iter().filter(|p| !p.1).map(|p| p.0).collect();
    anyhow::ensure!(
        missing.is_empty(),
        "--device {spec}: {} did not load; put the folder holding it on LD_LIBRARY_PATH \
         (with pip's NVIDIA packages: site-packages/nvidia/*/lib)",
        missing.join(", ")
    );
    let count = CudaContext::device_count()
        .map_err(|e| anyhow::anyhow!("--device {spec}: the NVIDIA driver failed: {e}"))?;
    let count = usize::try_from(count).unwrap_or(0);
    anyhow::ensure!(
        count > 0,
        "--device {spec}: the NVIDIA driver sees no GPU here"
    );
    let ordinal = spec.ordinal(slot, count).context("a CUDA device spec")?;
    anyhow::ensure!(
        ordinal < count,
        "--device {spec}: this machine has {count} GPU(s), numbered from 0"
    );
    // One stream for every thread: with candle's default (CUDA's per-thread stream) a batch
    // copied in by the main thread and the step a pool thread launches would be unordered.
    let device = Device::new_cuda_with_stream(ordinal)
        .with_context(|| format!("--device cuda:{ordinal}: cannot start CUDA"))?;
    if let Device::Cuda(d) = &device {
        let ctx = d.cuda_stream().context().clone();
        // SAFETY: all work goes to the one stream, which orders it; the per-buffer events
        // cudarc would otherwise create and record keep order between streams.
        unsafe { ctx.disable_event_tracking() };
        keep_freed_memory(&ctx);
    }
    Ok(device)
}

/// Lets the device's memory pool keep what the run frees: by default the driver hands it back
/// at every synchronisation, and the stopwatch synchronises at each stage of every step.
fn keep_freed_memory(ctx: &CudaContext) {
    let mut pool = std::ptr::null_mut();
    let mut keep = u64::MAX;
    // SAFETY: `pool` receives the device's default pool; the attribute takes a u64.
    let r = unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .and_then(|()| {
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&mut keep as *mut u64).cast(),
                )
                .result()
            })
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not keep freed GPU memory in the pool; steps may be slower");
    }
}

/// `cuda:N (GPU name)`.
pub(super) fn describe(d: &CudaDevice) -> String {
    let ctx = d.cuda_stream().context().clone();
    let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
    format!("cuda:{} ({name})", ctx.ordinal())
}
