//! The patched paths of the vendored candle-core (third_party/README.md) against plain loops:
//! matmul into an unzeroed output, and element-wise ops split over rayon's pool.

use candle_core::{DType, Device, Result, Tensor};

/// `a @ b` for `[B, M, K] @ [B, K, N]` by the definition, in f64.
fn naive(a: &[f64], b: &[f64], (bs, m, k, n): (usize, usize, usize, usize)) -> Vec<f64> {
    let mut c = vec![0.0; bs * m * n];
    for t in 0..bs {
        for i in 0..m {
            for j in 0..n {
                c[(t * m + i) * n + j] = (0..k)
                    .map(|l| a[(t * m + i) * k + l] * b[(t * k + l) * n + j])
                    .sum();
            }
        }
    }
    c
}

#[test]
fn matmul_writes_every_output_entry() -> Result<()> {
    let dev = Device::Cpu;
    // Fill the allocator's free lists with NaNs first, so an entry gemm skipped would show.
    for _ in 0..4 {
        drop(Tensor::full(f32::NAN, 1 << 16, &dev)?);
    }
    for (bs, m, k, n) in [
        (1, 37, 19, 23),
        (3, 16, 144, 16),
        (2, 5, 1, 7),
        (4, 9, 0, 6),
    ] {
        let a = Tensor::randn(0f64, 1., (bs, m, k), &dev)?;
        let b = Tensor::randn(0f64, 1., (bs, k, n), &dev)?;
        let want = naive(
            &a.flatten_all()?.to_vec1()?,
            &b.flatten_all()?.to_vec1()?,
            (bs, m, k, n),
        );
        for dtype in [DType::F64, DType::F32] {
            let got = a
                .to_dtype(dtype)?
                .matmul(&b.to_dtype(dtype)?)?
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let tol = if dtype == DType::F32 { 1e-4 } else { 1e-12 };
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{bs}x{m}x{k}x{n} {dtype:?}: {g} vs {w}"
                );
            }
        }
        // A transposed (strided) right-hand side takes another gemm layout.
        let bt = b.transpose(1, 2)?.contiguous()?.transpose(1, 2)?;
        let got: Vec<f64> = a.matmul(&bt)?.flatten_all()?.to_vec1()?;
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12));
    }
    Ok(())
}

#[test]
fn large_element_wise_ops_match_scalar_loops() -> Result<()> {
    let dev = Device::Cpu;
    // Above candle's threshold for the parallel path (64 Ki elements), with a broadcast.
    let (r, c) = (1000, 97);
    let x = Tensor::randn(0f32, 1., (r, c), &dev)?;
    let row = Tensor::randn(0f32, 1., (1, c), &dev)?;
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let rs: Vec<f32> = row.flatten_all()?.to_vec1()?;
    let sum: Vec<f32> = x.broadcast_add(&row)?.flatten_all()?.to_vec1()?;
    let prod: Vec<f32> = (&x * &x)?.flatten_all()?.to_vec1()?;
    let exp: Vec<f32> = x.exp()?.flatten_all()?.to_vec1()?;
    for i in 0..r * c {
        assert_eq!(sum[i], xs[i] + rs[i % c]);
        assert_eq!(prod[i], xs[i] * xs[i]);
        assert!((exp[i] - xs[i].exp()).abs() <= 1e-6 * xs[i].exp());
    }
    // Inside a 2-thread pool as well, where the split really runs in parallel.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let par: Vec<f32> = pool.install(|| x.broadcast_add(&row)?.flatten_all()?.to_vec1())?;
    assert_eq!(par, sum);
    Ok(())
}
