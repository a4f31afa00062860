//! K-FAC-family curvature against dense oracles (algorithms.md, "Oracles for tests").

mod common;

use candle_core::{DType, Device, Result, Tensor, Var};
use common::*;
use optimizers::curvature::RowAverage;
use optimizers::curvature::{
    Approx, Block, BlockOptions, Factor, LowRankFactor, SuaFactor, WoodburyMode,
};
use optimizers::curvature::{DenseMethod, InverseDtype};
use optimizers::{
    ConvLayout, DampingSplit, FactorInit, Hyper, LayerKind, LayerSpec, LayerStats, Local,
};

#[test]
fn woodbury_matches_the_dense_inverse_applied_and_formed() -> Result<()> {
    let mut r = rng(1);
    // The tolerance follows the weaker of the rows' dtype and the factorisation's precision.
    let cases = [
        (DType::F32, InverseDtype::F32, 1e-4),
        (DType::F64, InverseDtype::F32, 1e-4),
        (DType::F64, InverseDtype::F64, 1e-9),
    ];
    for (dtype, precision, tol) in cases {
        for (rows, n) in [(8, 20), (20, 20), (40, 20)] {
            for damping in [1e-3, 1e-1, 1.0] {
                let y = randn(rows, n, 1.0, dtype, &mut r)?;
                let want = inverse(&damped_gram(&mat(&y), damping));
                for mode in [WoodburyMode::Applied, WoodburyMode::Formed] {
                    let mut f = LowRankFactor::new(mode, precision, RowAverage::Ema, 1);
                    f.observe(&y, 0.95, &Local)?;
                    f.refresh(damping).unwrap();
                    let got = mat(&f.inverse_matrix()?);
                    let e = rel_err(&got, &want);
                    assert!(
                        e <= tol,
                        "{dtype:?} in {precision:?} N={rows} n={n} λ={damping} {mode:?}: {e:e}"
                    );
                    // Applied to a gradient from either side.
                    let v = randn(5, n, 1.0, dtype, &mut r)?;
                    let right = mat(&f.apply_right(&v)?);
                    let e = rel_err(&right, &matmul(&mat(&v), &want));
                    assert!(e <= tol, "right {dtype:?} {rows} {n} {damping}: {e:e}");
                    let vt = v.t()?.contiguous()?;
                    let left = mat(&f.apply_left(&vt)?);
                    let e = rel_err(&left, &matmul(&want, &mat(&vt)));
                    assert!(e <= tol, "left {dtype:?} {rows} {n} {damping}: {e:e}");
                }
            }
        }
    }
    Ok(())
}

fn conv_spec(c_in: usize, c_out: usize, k: usize, bias: bool, dtype: DType) -> Result<LayerSpec> {
    let w = Var::zeros((c_out, k, k, c_in), dtype, &Device::Cpu)?;
    Ok(LayerSpec {
        name: "conv".into(),
        kind: LayerKind::Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride: 1,
            padding: 1,
            layout: ConvLayout::ChannelsLast,
        },
        weight: w,
        bias: if bias {
            Some(Var::zeros(c_out, dtype, &Device::Cpu)?)
        } else {
            None
        },
    })
}

fn linear_spec(inputs: usize, outputs: usize, dtype: DType) -> Result<LayerSpec> {
    Ok(LayerSpec {
        name: "fc".into(),
        kind: LayerKind::Linear { inputs, outputs },
        weight: Var::zeros((outputs, inputs), dtype, &Device::Cpu)?,
        bias: Some(Var::zeros(outputs, dtype, &Device::Cpu)?),
    })
}

fn stats(
    m: usize,
    t: usize,
    inputs: usize,
    outputs: usize,
    bias: bool,
    r: &mut rand_chacha::ChaCha8Rng,
) -> Result<LayerStats> {
    Ok(LayerStats {
        a: randn(m * t, inputs, 1.0, DType::F64, r)?,
        g: randn(m * t, outputs, 0.3, DType::F64, r)?,
        batch: m,
        positions: t,
        has_bias: bias,
    })
}

/// Block options with every factorisation in f64, for identities that hold to round-off.
fn in_f64() -> BlockOptions {
    BlockOptions {
        precision: InverseDtype::F64,
        ..Hyper::default().block_options()
    }
}

/// The preconditioned gradient after one refresh on `stats`, no moving average, in f64.
fn precondition(
    spec: &LayerSpec,
    approx: Approx,
    st: &LayerStats,
    v: &Tensor,
    damping: f64,
) -> Result<Vec<Vec<f64>>> {
    let mut b = Block::new(spec.clone(), approx, in_f64());
    b.observe(st, 0.0, &rng(9), &Local)?;
    b.refresh(damping).unwrap();
    Ok(mat(&b.precondition(v)?.expect("an inverse")))
}

#[test]
fn kfac_preconditions_with_the_damped_dense_factors() -> Result<()> {
    let mut r = rng(2);
    let spec = conv_spec(3, 4, 3, true, DType::F64)?;
    let st = stats(4, 5, 27, 4, true, &mut r)?;
    let v = randn(4, 28, 1.0, DType::F64, &mut r)?;
    let lambda = 1e-2;
    let omega = inverse(&damped_gram(&mat(&st.a_augmented()?), lambda));
    let gamma = inverse(&damped_gram(&mat(&st.g), lambda));
    let want = matmul(&matmul(&gamma, &mat(&v)), &omega);
    for method in [DenseMethod::Eigen, DenseMethod::Cholesky] {
        for (precision, tol) in [(InverseDtype::F32, 1e-5), (InverseDtype::F64, 1e-9)] {
            let mut b = Block::new(
                spec.clone(),
                Approx::Kfac,
                BlockOptions {
                    dense: method,
                    precision,
                    // The oracle above puts λ on each factor.
                    split: DampingSplit::Each,
                    ..Hyper::default().block_options()
                },
            );
            b.observe(&st, 0.0, &rng(0), &Local)?;
            b.refresh(lambda).unwrap();
            let got = mat(&b.precondition(&v)?.unwrap());
            let e = rel_err(&got, &want);
            assert!(e < tol, "{method:?} in {precision:?}: {e:e}");
        }
    }
    Ok(())
}

#[test]
fn on_a_linear_layer_kfac_and_both_skfacs_agree() -> Result<()> {
    let mut r = rng(3);
    // N = 6 rows < n = 11 inputs (+ bias): Woodbury on Ω; Γ has 4 < 6 outputs: direct inverse.
    let spec = linear_spec(11, 4, DType::F64)?;
    let st = stats(6, 1, 11, 4, true, &mut r)?;
    let v = randn(4, 12, 1.0, DType::F64, &mut r)?;
    let kfac = precondition(&spec, Approx::Kfac, &st, &v, 1e-3)?;
    for approx in [
        Approx::ReduceSum,
        Approx::Subsample(1),
        Approx::Subsample(8),
    ] {
        let got = precondition(&spec, approx, &st, &v, 1e-3)?;
        let e = rel_err(&got, &kfac);
        assert!(e < 1e-8, "{approx:?}: {e:e}");
    }
    Ok(())
}

#[test]
fn on_a_conv_layer_subsampling_every_position_is_kfac() -> Result<()> {
    let mut r = rng(4);
    for bias in [false, true] {
        let spec = conv_spec(2, 3, 3, bias, DType::F64)?;
        let st = stats(3, 4, 18, 3, bias, &mut r)?;
        let v = randn(3, 18 + usize::from(bias), 1.0, DType::F64, &mut r)?;
        let kfac = precondition(&spec, Approx::Kfac, &st, &v, 1e-3)?;
        for s in [4, 8] {
            let got = precondition(&spec, Approx::Subsample(s), &st, &v, 1e-3)?;
            assert!(rel_err(&got, &kfac) < 1e-8, "s'={s} bias={bias}");
        }
        // Fewer samples than positions is a different (cheaper) approximation.
        let fewer = precondition(&spec, Approx::Subsample(1), &st, &v, 1e-3)?;
        assert!(rel_err(&fewer, &kfac) > 1e-3);
    }
    Ok(())
}

#[test]
fn reduce_sum_factors_are_built_from_per_example_means() -> Result<()> {
    let mut r = rng(5);
    let spec = conv_spec(2, 3, 1, false, DType::F64)?;
    let st = stats(5, 4, 2, 3, false, &mut r)?;
    let mut b = Block::new(spec, Approx::ReduceSum, Hyper::default().block_options());
    b.observe(&st, 0.0, &rng(0), &Local)?;
    let a = mat(&st.a);
    let means: Vec<Vec<f64>> = (0..5)
        .map(|e| {
            (0..2)
                .map(|j| (0..4).map(|t| a[e * 4 + t][j]).sum::<f64>() / 4.0)
                .collect()
        })
        .collect();
    let want = damped_gram(&means, 0.0);
    assert!(rel_err(&mat(&b.factors().0.matrix()?), &want) < 1e-12);
    Ok(())
}

#[test]
fn sua_factor_is_identity_kron_channel_covariance_and_inverts_exactly() -> Result<()> {
    let mut r = rng(6);
    let (k, c, rows) = (4, 3, 10);
    for bias in [false, true] {
        let a = randn(rows, k * c, 1.0, DType::F64, &mut r)?;
        let a_rows = if bias {
            Tensor::cat(
                &[&a, &Tensor::ones((rows, 1), DType::F64, &Device::Cpu)?],
                1,
            )?
        } else {
            a.clone()
        };
        let mut f = SuaFactor::new(
            k,
            c,
            ConvLayout::ChannelsLast,
            bias,
            DenseMethod::Eigen,
            InverseDtype::F64,
            FactorInit::First,
        );
        let mut single = SuaFactor::new(
            k,
            c,
            ConvLayout::ChannelsLast,
            bias,
            DenseMethod::Cholesky,
            InverseDtype::F32,
            FactorInit::First,
        );
        f.observe(&a_rows, 0.0, &Local)?;
        single.observe(&a_rows, 0.0, &Local)?;
        // Ω_c: the channel covariance over every (row, offset).
        let av = mat(&a);
        let mut omega_c = vec![vec![0.0; c]; c];
        for row in &av {
            for o in 0..k {
                for i in 0..c {
                    for j in 0..c {
                        omega_c[i][j] += row[o * c + i] * row[o * c + j] / (rows * k) as f64;
                    }
                }
            }
        }
        let n = k * c + usize::from(bias);
        let mut want = vec![vec![0.0; n]; n];
        for o in 0..k {
            for i in 0..c {
                for j in 0..c {
                    want[o * c + i][o * c + j] = omega_c[i][j];
                }
            }
        }
        if bias {
            want[n - 1][n - 1] = 1.0;
        }
        assert!(
            rel_err(&mat(&f.matrix()?), &want) < 1e-12,
            "I ⊗ Ω_c structure"
        );
        let lambda = 1e-2;
        f.refresh(lambda).unwrap();
        single.refresh(lambda).unwrap();
        let mut damped = want.clone();
        (0..n).for_each(|i| damped[i][i] += lambda);
        assert!(rel_err(&mat(&f.inverse_matrix()?), &inverse(&damped)) < 1e-10);
        let e = rel_err(&mat(&single.inverse_matrix()?), &inverse(&damped));
        assert!(e < 1e-5, "f32 Cholesky: {e:e}");
        let v = randn(2, n, 1.0, DType::F64, &mut r)?;
        let applied = mat(&f.apply_right(&v)?);
        assert!(rel_err(&applied, &matmul(&mat(&v), &inverse(&damped))) < 1e-10);
    }
    Ok(())
}

#[test]
fn sua_factor_on_channels_first_columns_is_the_channels_last_one_permuted() -> Result<()> {
    // candle-nn's weights are `[c_out, c_in, kh, kw]`: column `c·K + o` holds what the
    // channels-last column `o·C + c` does. Fed the same activations in each order, the two
    // factors must be one matrix under that permutation, damped, inverted and applied.
    let mut r = rng(16);
    let (k, c, rows) = (4, 3, 9);
    let last = |o: usize, ch: usize| o * c + ch;
    let first = |o: usize, ch: usize| ch * k + o;
    // perm[i]: the channels-last column that channels-first column i holds (bias stays last).
    let mut perm = vec![0; k * c + 1];
    for o in 0..k {
        for ch in 0..c {
            perm[first(o, ch)] = last(o, ch);
        }
    }
    perm[k * c] = k * c;
    let a = mat(&randn(rows, k * c, 1.0, DType::F64, &mut r)?);
    let ones = |m: &[Vec<f64>]| -> Vec<Vec<f64>> {
        m.iter()
            .map(|row| row.iter().copied().chain([1.0]).collect())
            .collect()
    };
    let a_last = ones(&a);
    let a_first: Vec<Vec<f64>> = a_last
        .iter()
        .map(|row| perm.iter().map(|&p| row[p]).collect())
        .collect();
    let tensor = |m: &[Vec<f64>]| {
        let flat: Vec<f64> = m.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (m.len(), m[0].len()), &Device::Cpu)
    };
    let factor = |layout| {
        SuaFactor::new(
            k,
            c,
            layout,
            true,
            DenseMethod::Eigen,
            InverseDtype::F64,
            FactorInit::First,
        )
    };
    let (mut fl, mut ff) = (
        factor(ConvLayout::ChannelsLast),
        factor(ConvLayout::ChannelsFirst),
    );
    fl.observe(&tensor(&a_last)?, 0.0, &Local)?;
    ff.observe(&tensor(&a_first)?, 0.0, &Local)?;
    let permuted = |m: &[Vec<f64>]| -> Vec<Vec<f64>> {
        perm.iter()
            .map(|&i| perm.iter().map(|&j| m[i][j]).collect())
            .collect()
    };
    let e = rel_err(&mat(&ff.matrix()?), &permuted(&mat(&fl.matrix()?)));
    assert!(e < 1e-14, "Ω_c ⊗ I_K: {e:e}");
    // Neither factor may be blind to the layout: the channels-last one on channels-first
    // columns is a different matrix.
    let mut wrong = factor(ConvLayout::ChannelsLast);
    wrong.observe(&tensor(&a_first)?, 0.0, &Local)?;
    assert!(rel_err(&mat(&wrong.matrix()?), &mat(&ff.matrix()?)) > 1e-2);
    let lambda = 1e-2;
    fl.refresh(lambda).unwrap();
    ff.refresh(lambda).unwrap();
    let mut damped = mat(&ff.matrix()?);
    (0..damped.len()).for_each(|i| damped[i][i] += lambda);
    assert!(rel_err(&mat(&ff.inverse_matrix()?), &inverse(&damped)) < 1e-10);
    let v_last = mat(&randn(2, k * c + 1, 1.0, DType::F64, &mut r)?);
    let v_first: Vec<Vec<f64>> = v_last
        .iter()
        .map(|row| perm.iter().map(|&p| row[p]).collect())
        .collect();
    let applied_first = mat(&ff.apply_right(&tensor(&v_first)?)?);
    assert!(rel_err(&applied_first, &matmul(&v_first, &inverse(&damped))) < 1e-10);
    let applied_last: Vec<Vec<f64>> = mat(&fl.apply_right(&tensor(&v_last)?)?)
        .iter()
        .map(|row| perm.iter().map(|&p| row[p]).collect())
        .collect();
    assert!(rel_err(&applied_first, &applied_last) < 1e-12);
    Ok(())
}

#[test]
fn moving_averages_follow_their_definitions() -> Result<()> {
    let mut r = rng(7);
    let (y1, y2) = (
        randn(4, 6, 1.0, DType::F64, &mut r)?,
        randn(4, 6, 1.0, DType::F64, &mut r)?,
    );
    // SKFAC averages the rows Y themselves (paper eqs. 26-27).
    let mut lr = LowRankFactor::new(WoodburyMode::Applied, InverseDtype::F32, RowAverage::Ema, 1);
    lr.observe(&y1, 0.9, &Local)?;
    lr.observe(&y2, 0.9, &Local)?;
    let ybar = ((&y1 * 0.9)? + (&y2 * 0.1)?)?;
    assert!(rel_err(&mat(&lr.matrix()?), &damped_gram(&mat(&ybar), 0.0)) < 1e-12);
    // A batch of another size is skipped, not mixed in.
    lr.observe(&randn(3, 6, 1.0, DType::F64, &mut r)?, 0.9, &Local)?;
    assert!(rel_err(&mat(&lr.matrix()?), &damped_gram(&mat(&ybar), 0.0)) < 1e-12);
    // K-FAC averages the factors.
    let mut d = optimizers::curvature::DenseFactor::new(
        DenseMethod::Eigen,
        InverseDtype::F32,
        FactorInit::First,
    );
    d.observe(&y1, 0.9, &Local)?;
    d.observe(&y2, 0.9, &Local)?;
    let g1 = damped_gram(&mat(&y1), 0.0);
    let g2 = damped_gram(&mat(&y2), 0.0);
    let want: Vec<Vec<f64>> = g1
        .iter()
        .zip(&g2)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 0.9 * x + 0.1 * y).collect())
        .collect();
    assert!(rel_err(&mat(&d.matrix()?), &want) < 1e-12);
    Ok(())
}

#[test]
fn a_failed_factorisation_falls_back_to_the_plain_gradient() -> Result<()> {
    let mut r = rng(8);
    let spec = linear_spec(5, 3, DType::F64)?;
    let mut st = stats(4, 1, 5, 3, true, &mut r)?;
    st.a = (st.a * f64::NAN)?;
    let mut b = Block::new(spec, Approx::Kfac, Hyper::default().block_options());
    b.observe(&st, 0.0, &rng(0), &Local)?;
    assert!(b.refresh(1e-3).is_err());
    assert!(b
        .precondition(&randn(3, 6, 1.0, DType::F64, &mut r)?)?
        .is_none());
    Ok(())
}

#[test]
fn the_first_moving_average_step_from_the_identity_is_beta_i_plus_the_batch() -> Result<()> {
    let mut r = rng(11);
    let y = randn(5, 4, 1.0, DType::F64, &mut r)?;
    let mut d = optimizers::curvature::DenseFactor::new(
        DenseMethod::Eigen,
        InverseDtype::F32,
        FactorInit::Identity,
    );
    d.observe(&y, 0.95, &Local)?;
    let want: Vec<Vec<f64>> = damped_gram(&mat(&y), 0.0)
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, x)| 0.05 * x + if i == j { 0.95 } else { 0.0 })
                .collect()
        })
        .collect();
    assert!(rel_err(&mat(&d.matrix()?), &want) < 1e-12);
    Ok(())
}

#[test]
fn each_damping_split_adds_what_it_says_to_each_factor() -> Result<()> {
    let mut r = rng(12);
    let spec = linear_spec(5, 3, DType::F64)?;
    let st = stats(8, 1, 5, 3, true, &mut r)?;
    let v = randn(3, 6, 1.0, DType::F64, &mut r)?;
    let (a, g) = (mat(&st.a_augmented()?), mat(&st.g));
    // π² = (tr Ω / dim Ω) / (tr Γ / dim Γ), from the traces of the dense factors.
    let mean_diag = |y: &[Vec<f64>]| {
        let f = damped_gram(y, 0.0);
        (0..f.len()).map(|i| f[i][i]).sum::<f64>() / f.len() as f64
    };
    let pi = (mean_diag(&a) / mean_diag(&g)).sqrt();
    let lambda: f64 = 0.04;
    let r2 = lambda.sqrt();
    for (split, (lo, lg)) in [
        (DampingSplit::Each, (lambda, lambda)),
        (DampingSplit::Sqrt, (r2, r2)),
        (DampingSplit::Pi, (r2 * pi, r2 / pi)),
    ] {
        let omega = inverse(&damped_gram(&a, lo));
        let gamma = inverse(&damped_gram(&g, lg));
        let want = matmul(&matmul(&gamma, &mat(&v)), &omega);
        for approx in [Approx::Kfac, Approx::ReduceSum] {
            let opts = BlockOptions { split, ..in_f64() };
            let mut b = Block::new(spec.clone(), approx, opts);
            b.observe(&st, 0.0, &rng(0), &Local)?;
            let (got_o, got_g) = b.damping_split(lambda).unwrap();
            assert!(
                (got_o - lo).abs() < 1e-12 && (got_g - lg).abs() < 1e-12,
                "{split:?}"
            );
            b.refresh(lambda).unwrap();
            let got = mat(&b.precondition(&v)?.unwrap());
            assert!(rel_err(&got, &want) < 1e-9, "{split:?} {approx:?}");
        }
    }
    Ok(())
}

#[test]
fn an_identity_start_is_refused_for_skfacs_moving_average_of_rows() -> Result<()> {
    let params = optimizers::ParamSet {
        layers: vec![linear_spec(5, 3, DType::F64)?],
        others: vec![],
    };
    let h = Hyper {
        factor_init: FactorInit::Identity,
        ..Hyper::default()
    };
    for kind in [
        optimizers::OptimizerKind::SkfacRs,
        optimizers::OptimizerKind::SkfacSs,
    ] {
        let e = optimizers::build(kind, &params, &h)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("factor_init") && e.contains("first"), "{e}");
    }
    assert!(optimizers::build(optimizers::OptimizerKind::Kfac, &params, &h).is_ok());
    Ok(())
}

/// `Σ_j ω_j B_jᵀB_j / M` over `batches` (newest first) with `ω_j ∝ (1−β)βʲ`, normalised.
fn weighted_gram(batches: &[&Tensor], beta: f64) -> Vec<Vec<f64>> {
    let w: Vec<f64> = (0..batches.len())
        .map(|j| (1.0 - beta) * beta.powi(j as i32))
        .collect();
    let total: f64 = w.iter().sum();
    let grams: Vec<Vec<Vec<f64>>> = batches.iter().map(|b| damped_gram(&mat(b), 0.0)).collect();
    let n = grams[0].len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|k| {
                    grams
                        .iter()
                        .zip(&w)
                        .map(|(g, wj)| wj / total * g[i][k])
                        .sum()
                })
                .collect()
        })
        .collect()
}

#[test]
fn stacked_and_batch_rows_give_the_factors_they_define() -> Result<()> {
    let mut r = rng(13);
    let batches: Vec<Tensor> = (0..6)
        .map(|_| randn(5, 4, 1.0, DType::F64, &mut r))
        .collect::<Result<_>>()?;
    let beta = 0.8;
    let mut stack = LowRankFactor::new(
        WoodburyMode::Applied,
        InverseDtype::F32,
        RowAverage::Stack,
        4,
    );
    let mut batch = LowRankFactor::new(
        WoodburyMode::Applied,
        InverseDtype::F32,
        RowAverage::Batch,
        4,
    );
    for (t, b) in batches.iter().enumerate() {
        stack.observe(b, beta, &Local)?;
        batch.observe(b, beta, &Local)?;
        // The newest min(t+1, 4) batches, newest first.
        let held: Vec<&Tensor> = batches[..=t].iter().rev().take(4).collect();
        assert!(
            rel_err(&mat(&stack.matrix()?), &weighted_gram(&held, beta)) < 1e-12,
            "t={t}"
        );
        assert!(rel_err(&mat(&batch.matrix()?), &damped_gram(&mat(b), 0.0)) < 1e-12);
    }
    Ok(())
}

#[test]
fn for_independent_rows_only_the_ema_of_rows_shrinks_the_factor() -> Result<()> {
    // Zero-mean rows of unit variance, independent between batches: a batch's covariance has
    // mean diagonal 1. The moving average of the rows tends to (1−β)/(1+β) of it (paper
    // eqs. 26-27 as written); stacking keeps it.
    let (beta, trials, steps) = (0.5, 200, 12);
    let mut r = rng(14);
    let (mut ema_sum, mut stack_sum) = (0.0, 0.0);
    for _ in 0..trials {
        let mut ema =
            LowRankFactor::new(WoodburyMode::Applied, InverseDtype::F32, RowAverage::Ema, 1);
        let mut stack = LowRankFactor::new(
            WoodburyMode::Applied,
            InverseDtype::F32,
            RowAverage::Stack,
            8,
        );
        for _ in 0..steps {
            let y = randn(4, 3, 1.0, DType::F64, &mut r)?;
            ema.observe(&y, beta, &Local)?;
            stack.observe(&y, beta, &Local)?;
        }
        ema_sum += ema.mean_diagonal()?;
        stack_sum += stack.mean_diagonal()?;
    }
    let (ema, stack) = (ema_sum / trials as f64, stack_sum / trials as f64);
    let shrunk = (1.0 - beta) / (1.0 + beta);
    assert!((ema - shrunk).abs() < 0.05, "ema {ema}, expected {shrunk}");
    assert!((stack - 1.0).abs() < 0.05, "stack {stack}, expected 1");
    Ok(())
}

#[test]
fn each_retry_shares_ten_times_the_damping_as_the_split_says() -> Result<()> {
    // Ω = diag(1, −0.5) (a Linear layer with one input and a bias) and Γ = [1]: a Cholesky
    // refresh works once Ω's damping exceeds 0.5. Attempt a shares 10^a·λ between the factors
    // (docs/algorithms.md): λ = 0.01 under `each` works at 1 (attempt 2), under `sqrt` at
    // √1 = 1 (attempt 2), under `pi` (π = √(0.25 / 1)) at 10, since √1·π = 0.5 is not enough.
    let dev = Device::Cpu;
    let mut src = std::collections::BTreeMap::new();
    src.insert(
        "b.omega.stat".to_string(),
        Tensor::new(&[[1f64, 0.0], [0.0, -0.5]], &dev)?,
    );
    src.insert("b.gamma.stat".to_string(), Tensor::new(&[[1f64]], &dev)?);
    for (split, works_at) in [
        (DampingSplit::Each, 1.0),
        (DampingSplit::Sqrt, 1.0),
        (DampingSplit::Pi, 10.0),
    ] {
        let opts = BlockOptions {
            dense: DenseMethod::Cholesky,
            split,
            ..in_f64()
        };
        let mut b = Block::new(linear_spec(1, 1, DType::F64)?, Approx::Kfac, opts);
        b.load("b", &src)?;
        let lambda = b.refresh(0.01).unwrap();
        assert!((lambda - works_at).abs() < 1e-12, "{split:?}: {lambda}");
        // The inverses are those of the split of the damping that worked.
        let (lo, lg) = b.damping_split(works_at).unwrap();
        let (omega, gamma) = b.factors();
        let want_o = [[1.0 / (1.0 + lo), 0.0], [0.0, 1.0 / (lo - 0.5)]];
        let got_o = mat(&omega.inverse_matrix()?);
        assert!(
            rel_err(&got_o, want_o.map(|r| r.to_vec()).as_ref()) < 1e-12,
            "{split:?}"
        );
        let got_g = mat(&gamma.inverse_matrix()?);
        assert!((got_g[0][0] - 1.0 / (1.0 + lg)).abs() < 1e-12, "{split:?}");
    }
    Ok(())
}
