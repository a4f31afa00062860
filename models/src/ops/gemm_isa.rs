//! Which of gemm's kernels the matrix products run on this CPU: the benchmarks print it
//! beside every timing, since the same build runs AVX-512 kernels on one machine and AVX2 on
//! the next.

use std::fmt;

/// The instruction set of gemm's kernels (candle's matmul and [`super::conv2d_tiled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmIsa {
    /// 512-bit kernels: the CPU has AVX-512F and gemm is built with `x86-v4`.
    Avx512,
    /// 256-bit AVX2/FMA kernels.
    Avx2Fma,
    /// 128-bit NEON kernels (Arm).
    Neon,
    /// No SIMD kernel for this CPU.
    Scalar,
}

impl GemmIsa {
    /// The instruction set's usual name.
    pub fn name(self) -> &'static str {
        match self {
            GemmIsa::Avx512 => "AVX-512F",
            GemmIsa::Avx2Fma => "AVX2/FMA",
            GemmIsa::Neon => "NEON",
            GemmIsa::Scalar => "scalar",
        }
    }
}

impl fmt::Display for GemmIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernels gemm dispatches to here. The same test as gemm 0.19's own dispatch
/// (`gemm_common::gemm_def!`'s `init_gemm_fn`), which models/Cargo.toml builds with `x86-v4`.
pub fn gemm_isa() -> GemmIsa {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return GemmIsa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return GemmIsa::Avx2Fma;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return GemmIsa::Neon;
    }
    GemmIsa::Scalar
}
