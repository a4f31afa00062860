//! The K-FAC family's damped inverses on a CUDA device with cuSOLVER (K-FAC's dense factors,
//! SUA's channel factors, SKFAC's N×N Woodbury systems): the symmetric eigendecomposition
//! (`syevd`) or Cholesky (`potrf`, `potri`), in f32 (`S…`) or f64 (`D…`) as the host path
//! (`linalg.rs`).
//! The factor never leaves the device; only cuSOLVER's status word and the finiteness checks
//! come back to the host.
//!
//! cuSOLVER is column-major. A symmetric matrix is its own transpose, so the row-major buffer
//! goes in as it is; what comes out is read back transposed: `syevd`'s eigenvectors (columns)
//! are the rows of the row-major result, and `potri`'s lower triangle is its upper one.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Device, Shape, Storage, Tensor};
use cudarc::cusolver::{sys, DnHandle};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut, DeviceRepr, ValidAsZeroBits};

use super::factor::{CandleError, DenseMethod, FactorError, Real};

/// `cusolverDn?potrf_bufferSize` and `cusolverDn?potri_bufferSize`.
type Workspace<T> = unsafe fn(
    sys::cusolverDnHandle_t,
    sys::cublasFillMode_t,
    c_int,
    *mut T,
    c_int,
    *mut c_int,
) -> sys::cusolverStatus_t;

/// `cusolverDn?potrf` and `cusolverDn?potri`.
type Factorise<T> = unsafe fn(
    sys::cusolverDnHandle_t,
    sys::cublasFillMode_t,
    c_int,
    *mut T,
    c_int,
    *mut T,
    c_int,
    *mut c_int,
) -> sys::cusolverStatus_t;

/// `cusolverDn?syevd_bufferSize`.
type EigenWorkspace<T> = unsafe fn(
    sys::cusolverDnHandle_t,
    sys::cusolverEigMode_t,
    sys::cublasFillMode_t,
    c_int,
    *const T,
    c_int,
    *const T,
    *mut c_int,
) -> sys::cusolverStatus_t;

/// `cusolverDn?syevd`.
type Eigen<T> = unsafe fn(
    sys::cusolverDnHandle_t,
    sys::cusolverEigMode_t,
    sys::cublasFillMode_t,
    c_int,
    *mut T,
    c_int,
    *mut T,
    *mut T,
    c_int,
    *mut c_int,
) -> sys::cusolverStatus_t;

/// A precision cuSOLVER factorises in: its routines for that type.
pub(crate) trait Solver: Real + CudaDType + DeviceRepr + ValidAsZeroBits {
    const POTRF_WORKSPACE: Workspace<Self>;
    const POTRI_WORKSPACE: Workspace<Self>;
    const POTRF: Factorise<Self>;
    const POTRI: Factorise<Self>;
    const SYEVD_WORKSPACE: EigenWorkspace<Self>;
    const SYEVD: Eigen<Self>;
}

impl Solver for f32 {
    const POTRF_WORKSPACE: Workspace<Self> = sys::cusolverDnSpotrf_bufferSize;
    const POTRI_WORKSPACE: Workspace<Self> = sys::cusolverDnSpotri_bufferSize;
    const POTRF: Factorise<Self> = sys::cusolverDnSpotrf;
    const POTRI: Factorise<Self> = sys::cusolverDnSpotri;
    const SYEVD_WORKSPACE: EigenWorkspace<Self> = sys::cusolverDnSsyevd_bufferSize;
    const SYEVD: Eigen<Self> = sys::cusolverDnSsyevd;
}

impl Solver for f64 {
    const POTRF_WORKSPACE: Workspace<Self> = sys::cusolverDnDpotrf_bufferSize;
    const POTRI_WORKSPACE: Workspace<Self> = sys::cusolverDnDpotri_bufferSize;
    const POTRF: Factorise<Self> = sys::cusolverDnDpotrf;
    const POTRI: Factorise<Self> = sys::cusolverDnDpotri;
    const SYEVD_WORKSPACE: EigenWorkspace<Self> = sys::cusolverDnDsyevd_bufferSize;
    const SYEVD: Eigen<Self> = sys::cusolverDnDsyevd;
}

fn failed(what: &str, e: impl std::fmt::Display) -> FactorError {
    FactorError::Candle(CandleError(format!("cuSOLVER {what}: {e}")))
}

/// One cuSOLVER handle per CUDA stream, made on first use: making one costs more than a small
/// factor's refresh, and work on one stream stays in order.
fn handle(stream: &Arc<CudaStream>) -> Result<Arc<DnHandle>, FactorError> {
    static HANDLES: OnceLock<Mutex<HashMap<usize, Arc<DnHandle>>>> = OnceLock::new();
    let key = stream.cu_stream() as usize;
    let mut handles = HANDLES
        .get_or_init(Default::default)
        .lock()
        .expect("cuSOLVER handles lock");
    if let Some(h) = handles.get(&key) {
        return Ok(h.clone());
    }
    let h = Arc::new(DnHandle::new(stream.clone()).map_err(|e| failed("handle", e))?);
    handles.insert(key, h.clone());
    Ok(h)
}

/// Whether every entry of `t` is finite (one scalar read: `t − t` is NaN exactly there).
fn finite(t: &Tensor) -> candle_core::Result<bool> {
    Ok(t.sub(t)?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        .is_finite())
}

/// A copy of the contiguous `[n, n]` tensor `a`'s elements that cuSOLVER may overwrite.
fn owned_copy<T: Solver>(
    a: &Tensor,
    stream: &Arc<CudaStream>,
) -> Result<CudaSlice<T>, FactorError> {
    let a = a.contiguous()?;
    let (storage, layout) = a.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        return Err(failed("input", "the matrix is not on a CUDA device"));
    };
    let (start, len) = (layout.start_offset(), a.elem_count());
    let src = s.as_cuda_slice::<T>()?.slice(start..start + len);
    stream.clone_dtod(&src).map_err(|e| failed("copy", e))
}

/// A tensor of `shape` over `slice`.
fn tensor<T: Solver>(slice: CudaSlice<T>, shape: impl Into<Shape>, dev: &CudaDevice) -> Tensor {
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone()));
    Tensor::from_storage(storage, shape, BackpropOp::none(), false)
}

/// cuSOLVER's `devInfo`: 0 on success.
fn info(stream: &Arc<CudaStream>, info: &CudaSlice<i32>) -> Result<i32, FactorError> {
    let v = stream.clone_dtoh(info).map_err(|e| failed("status", e))?;
    Ok(v[0])
}

/// `(stat + λI)⁻¹` for a symmetric `stat` on a CUDA device, factorised in `T` and returned in
/// `stat`'s dtype, with the errors of the host's `damped_inverse`.
pub(crate) fn damped_inverse<T: Solver>(
    stat: &Tensor,
    damping: f64,
    method: DenseMethod,
) -> Result<Tensor, FactorError> {
    let Device::Cuda(dev) = stat.device() else {
        return Err(failed("input", "the matrix is not on a CUDA device"));
    };
    let (n, cols) = stat.dims2()?;
    if n != cols {
        return Err(failed(
            "input",
            format!("a factor must be square, not {n}×{cols}"),
        ));
    }
    let a = stat.to_dtype(T::DTYPE)?;
    if !finite(&a)? {
        return Err(FactorError::NotFinite);
    }
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(FactorError::NotPositiveDefinite);
    }
    let stream = dev.cuda_stream();
    // cuSOLVER works in the calling thread's current context (a pool worker has none yet).
    stream
        .context()
        .bind_to_thread()
        .map_err(|e| failed("context", e))?;
    let h = handle(&stream)?;
    let alloc = |len: usize| {
        stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(|e| failed("alloc", e))
    };
    let mut status = stream
        .alloc_zeros::<i32>(1)
        .map_err(|e| failed("alloc", e))?;
    let lower = sys::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
    let ni = n as i32;
    let inv = match method {
        DenseMethod::Eigen => {
            let mut m = owned_copy::<T>(&a, &stream)?;
            let mut w = alloc(n)?;
            let jobz = sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR;
            let mut lwork = 0i32;
            {
                let (m_ptr, _m) = m.device_ptr_mut(&stream);
                let (w_ptr, _w) = w.device_ptr_mut(&stream);
                // SAFETY: `m` holds n·n and `w` n `T`s on the handle's stream.
                unsafe {
                    T::SYEVD_WORKSPACE(
                        h.cu(),
                        jobz,
                        lower,
                        ni,
                        m_ptr as *const T,
                        ni,
                        w_ptr as *const T,
                        &mut lwork,
                    )
                }
                .result()
                .map_err(|e| failed("syevd workspace", e))?;
            }
            let mut work = alloc(lwork as usize)?;
            {
                let (m_ptr, _m) = m.device_ptr_mut(&stream);
                let (w_ptr, _w) = w.device_ptr_mut(&stream);
                let (work_ptr, _k) = work.device_ptr_mut(&stream);
                let (info_ptr, _i) = status.device_ptr_mut(&stream);
                // SAFETY: buffers as above; `work` holds the `lwork` `T`s asked for.
                unsafe {
                    T::SYEVD(
                        h.cu(),
                        jobz,
                        lower,
                        ni,
                        m_ptr as *mut T,
                        ni,
                        w_ptr as *mut T,
                        work_ptr as *mut T,
                        lwork,
                        info_ptr as *mut i32,
                    )
                }
                .result()
                .map_err(|e| failed("syevd", e))?;
            }
            if info(&stream, &status)? != 0 {
                return Err(FactorError::NoConvergence);
            }
            // Row j of `ut` is eigenvector j; round-off negative eigenvalues clamp to 0.
            let ut = tensor(m, (n, n), dev);
            let d = tensor(w, n, dev).relu()?.affine(1.0, damping)?;
            if d.min(0)?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?
                <= 0.0
            {
                return Err(FactorError::NotPositiveDefinite);
            }
            ut.t()?.broadcast_div(&d.unsqueeze(0)?)?.matmul(&ut)?
        }
        DenseMethod::Cholesky => {
            let eye = Tensor::eye(n, T::DTYPE, stat.device())?;
            let damped = (&a + (&eye * damping)?)?;
            let mut m = owned_copy::<T>(&damped, &stream)?;
            // potrf and potri share their signatures: one workspace serves both, in turn.
            let mut lwork = 0i32;
            for (what, size) in [
                ("potrf workspace", T::POTRF_WORKSPACE),
                ("potri workspace", T::POTRI_WORKSPACE),
            ] {
                let mut need = 0i32;
                let (m_ptr, _m) = m.device_ptr_mut(&stream);
                // SAFETY: `m` holds n·n `T`s on the handle's stream.
                unsafe { size(h.cu(), lower, ni, m_ptr as *mut T, ni, &mut need) }
                    .result()
                    .map_err(|e| failed(what, e))?;
                lwork = lwork.max(need);
            }
            let mut work = alloc(lwork as usize)?;
            for (what, step) in [("potrf", T::POTRF), ("potri", T::POTRI)] {
                {
                    let (m_ptr, _m) = m.device_ptr_mut(&stream);
                    let (work_ptr, _k) = work.device_ptr_mut(&stream);
                    let (info_ptr, _i) = status.device_ptr_mut(&stream);
                    // SAFETY: `m` n·n, `work` the larger of the two workspaces, `status` one
                    // int; potri runs on the Cholesky factor potrf left in `m`.
                    unsafe {
                        step(
                            h.cu(),
                            lower,
                            ni,
                            m_ptr as *mut T,
                            ni,
                            work_ptr as *mut T,
                            lwork,
                            info_ptr as *mut i32,
                        )
                    }
                    .result()
                    .map_err(|e| failed(what, e))?;
                }
                if info(&stream, &status)? != 0 {
                    return Err(FactorError::NotPositiveDefinite);
                }
            }
            // The inverse is in the row-major upper triangle; the rest is the input's.
            let r = tensor(m, (n, n), dev);
            let upper = Tensor::triu2(n, T::DTYPE, stat.device())?;
            let strict = (&upper - eye)?;
            (r.mul(&upper)? + r.mul(&strict)?.t()?)?
        }
    };
    if !finite(&inv)? {
        return Err(FactorError::NotPositiveDefinite);
    }
    Ok(inv.to_dtype(stat.dtype())?)
}
