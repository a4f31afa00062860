//! gemm's AVX-512 kernels (gemm 0.19 built with `x86-v4`, chosen at run time on CPUs with
//! AVX-512F) against its AVX2/FMA ones (faer's gemm 0.18, which has no AVX-512 kernels on
//! stable Rust) and a plain f64 loop. On an AVX2 machine both run AVX2/FMA and this checks
//! that path against the loop; on an AVX-512 machine it checks that the two paths give the
//! same products to rounding.

use models::ops::{gemm_isa, GemmIsa};

/// The shapes (m, n, k): edge tiles in every dimension, conv-like depths (k = 9·c_in + 1) and
/// products big enough for gemm's blocked, packed path.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (7, 5, 3),
    (16, 48, 33),
    (37, 129, 64),
    (33, 17, 577),
    (200, 96, 300),
    (512, 64, 1152),
];

trait Real: Copy + 'static {
    const EPS: f64;
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}

impl Real for f32 {
    const EPS: f64 = f32::EPSILON as f64;
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const EPS: f64 = f64::EPSILON;
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
}

/// A deterministic spread of values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// One product's operands, row-major: `c = c0 + a @ b`, `a` m×k, `b` k×n.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    c0: Vec<f64>,
}

impl Case {
    /// The product by the definition, and per entry the Σ|a||b| that rounding scales with.
    fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut c = self.c0.clone();
        let mut scale: Vec<f64> = self.c0.iter().map(|v| v.abs()).collect();
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    let p = self.a[i * k + l] * self.b[l * n + j];
                    c[i * n + j] += p;
                    scale[i * n + j] += p.abs();
                }
            }
        }
        (c, scale)
    }

    /// The product in `T` by gemm 0.19 (this CPU's dispatch) and by gemm 0.18 (AVX2/FMA),
    /// with `a` read from a column-major copy when `lhs_col_major`, on two threads when `par`.
    /// Without `read_dst` the destinations start as NaN (gemm must overwrite every entry) and
    /// `c0` is taken as zero.
    fn products<T: Real>(
        &self,
        read_dst: bool,
        lhs_col_major: bool,
        par: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let (m, n, k) = (self.m, self.n, self.k);
        let a: Vec<T> = if lhs_col_major {
            (0..m * k)
                .map(|i| T::of(self.a[(i % m) * k + i / m]))
                .collect()
        } else {
            self.a.iter().map(|&v| T::of(v)).collect()
        };
        let (lcs, lrs) = if lhs_col_major {
            (m as isize, 1)
        } else {
            (1, k as isize)
        };
        let b: Vec<T> = self.b.iter().map(|&v| T::of(v)).collect();
        let start = |v: f64| T::of(if read_dst { v } else { f64::NAN });
        let mut fast: Vec<T> = self.c0.iter().map(|&v| start(v)).collect();
        let mut fma = fast.clone();
        let (one, n_) = (T::of(1.0), n as isize);
        // SAFETY: `a` is m×k, `b` k×n and the destinations m×n with the strides given.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                fast.as_mut_ptr(),
                1,
                n_,
                read_dst,
                a.as_ptr(),
                lcs,
                lrs,
                b.as_ptr(),
                1,
                n_,
                one,
                one,
                false,
                false,
                false,
                if par {
                    gemm::Parallelism::Rayon(2)
                } else {
                    gemm::Parallelism::None
                },
            );
            gemm_fma::gemm(
                m,
                n,
                k,
                fma.as_mut_ptr(),
                1,
                n_,
                read_dst,
                a.as_ptr(),
                lcs,
                lrs,
                b.as_ptr(),
                1,
                n_,
                one,
                one,
                false,
                false,
                false,
                if par {
                    gemm_fma::Parallelism::Rayon(2)
                } else {
                    gemm_fma::Parallelism::None
                },
            );
        }
        let wide = |v: Vec<T>| v.into_iter().map(T::f64).collect();
        (wide(fast), wide(fma))
    }
}

/// Both paths within 2(k+1)ε of the loop (relative to Σ|a||b|) and of each other, for every
/// shape, writing a fresh output or adding onto a matrix, either layout of the left factor, serial or on two
/// threads; returns the largest difference between the paths.
fn check<T: Real>() -> f64 {
    let mut worst: f64 = 0.0;
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        let seed = 3 * i as u64;
        for read_dst in [false, true] {
            let c0 = if !read_dst {
                vec![0.0; m * n]
            } else {
                values(m * n, seed + 3)
            };
            let case = Case {
                m,
                n,
                k,
                a: values(m * k, seed + 1),
                b: values(k * n, seed + 2),
                c0,
            };
            let (want, scale) = case.reference();
            let tol = 2.0 * (k + 1) as f64 * T::EPS;
            for lhs_col_major in [false, true] {
                for par in [false, true] {
                    let (fast, fma) = case.products::<T>(read_dst, lhs_col_major, par);
                    for e in 0..m * n {
                        let s = scale[e].max(f64::MIN_POSITIVE);
                        let at = (m, n, k, read_dst, lhs_col_major, par, e);
                        let off = |v: f64, w: f64| (v - w).abs() / s;
                        let (e_fast, e_fma) = (off(fast[e], want[e]), off(fma[e], want[e]));
                        let e_paths = off(fast[e], fma[e]);
                        worst = worst.max(e_paths);
                        assert!(
                            e_fast <= tol,
                            "{}: {e_fast:.1e} off the loop at {at:?}",
                            gemm_isa()
                        );
                        assert!(e_fma <= tol, "AVX2/FMA: {e_fma:.1e} off the loop at {at:?}");
                        assert!(
                            e_paths <= tol,
                            "{} vs AVX2/FMA: {e_paths:.1e} apart at {at:?}",
                            gemm_isa()
                        );
                    }
                }
            }
        }
    }
    worst
}

#[test]
fn the_dispatched_kernels_agree_with_avx2_to_rounding_in_f32() {
    let worst = check::<f32>();
    eprintln!("{} vs AVX2/FMA, f32: at most {worst:.1e} apart", gemm_isa());
}

#[test]
fn the_dispatched_kernels_agree_with_avx2_to_rounding_in_f64() {
    let worst = check::<f64>();
    eprintln!("{} vs AVX2/FMA, f64: at most {worst:.1e} apart", gemm_isa());
}

/// The reported kernels follow the CPU's flags, read here from /proc/cpuinfo rather than
/// through CPUID as gemm and `gemm_isa` do.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_reported_kernels_follow_the_cpu_flags() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    let want = if flags.contains(&"avx512f") {
        GemmIsa::Avx512
    } else if flags.contains(&"fma") {
        GemmIsa::Avx2Fma
    } else {
        GemmIsa::Scalar
    };
    assert_eq!(gemm_isa(), want, "/proc/cpuinfo flags: {flags:?}");
}
