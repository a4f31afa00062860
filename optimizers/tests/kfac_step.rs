//! A whole K-FAC step against its definition: the preconditioned gradient of dense damped
//! factors, KL-clipped by `ν = min(1, √(κ / (lr² Σ⟨P, V⟩)))` (algorithms.md), then the
//! momentum step.

mod common;

use candle_core::{DType, Device, Result, Tensor, Var};
use common::*;
use optimizers::curvature::InverseDtype;
use optimizers::{
    build, DampingSplit, Hyper, LayerKind, LayerSpec, LayerStats, OptimizerKind, ParamSet,
};

#[test]
fn a_kfac_step_is_the_kl_clipped_preconditioned_gradient() -> Result<()> {
    let (inputs, outputs, m) = (5, 3, 4);
    let mut r = rng(11);
    let st = LayerStats {
        a: randn(m, inputs, 1.0, DType::F64, &mut r)?,
        g: randn(m, outputs, 0.3, DType::F64, &mut r)?,
        batch: m,
        positions: 1,
        has_bias: true,
    };
    // The gradient V = [∂W | ∂b], made by backpropagating ⟨W, C_w⟩ + ⟨b, c_b⟩.
    let c = randn(outputs, inputs + 1, 1.0, DType::F64, &mut r)?;
    let v = mat(&c);
    let (lambda, lr) = (0.05, 0.1);
    let omega = inverse(&damped_gram(&mat(&st.a_augmented()?), lambda));
    let gamma = inverse(&damped_gram(&mat(&st.g), lambda));
    let p = matmul(&matmul(&gamma, &v), &omega);
    let pv: f64 = p
        .iter()
        .flatten()
        .zip(v.iter().flatten())
        .map(|(a, b)| a * b)
        .sum();

    // κ large enough to leave the step alone, then small enough to clip it to a tenth; the
    // inverses in either precision, to its round-off.
    let cases = [(1e6, 1.0), (0.01 * lr * lr * pv, 0.1)];
    let precisions = [(InverseDtype::F64, 1e-9), (InverseDtype::F32, 1e-5)];
    for ((kl_clip, nu), (inverse_dtype, tol)) in cases
        .into_iter()
        .flat_map(|c| precisions.into_iter().map(move |p| (c, p)))
    {
        let w = Var::zeros((outputs, inputs), DType::F64, &Device::Cpu)?;
        let b = Var::zeros(outputs, DType::F64, &Device::Cpu)?;
        let spec = LayerSpec {
            name: "fc".into(),
            kind: LayerKind::Linear { inputs, outputs },
            weight: w.clone(),
            bias: Some(b.clone()),
        };
        let params = ParamSet {
            layers: vec![spec],
            others: vec![],
        };
        let h = Hyper {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            damping: lambda,
            // The oracle puts λ on each factor.
            damping_split: DampingSplit::Each,
            stat_decay: 0.0,
            kl_clip,
            inverse_dtype,
            t_cov: 1,
            t_inv: 1,
            ..Hyper::default()
        };
        let mut opt = build(OptimizerKind::Kfac, &params, &h).unwrap();
        let loss = ((w.as_tensor() * c.narrow(1, 0, inputs)?)?.sum_all()?
            + (b.as_tensor() * c.narrow(1, inputs, 1)?.squeeze(1)?)?.sum_all()?)?;
        opt.step(&loss.backward()?, Some(std::slice::from_ref(&st)))
            .unwrap();
        let got = Tensor::cat(&[w.as_tensor(), &b.as_tensor().unsqueeze(1)?], 1)?;
        let want: Vec<Vec<f64>> = p
            .iter()
            .map(|row| row.iter().map(|x| -lr * nu * x).collect())
            .collect();
        let e = rel_err(&mat(&got), &want);
        assert!(e < tol, "κ = {kl_clip} in {inverse_dtype:?}: {e:e}");
    }
    Ok(())
}

#[test]
fn the_kfac_familys_momentum_is_nesterovs_when_asked() -> Result<()> {
    // A linear loss and the same statistics every step keep the preconditioned gradient P the
    // same, so two steps move the weight by −lr·(2 + μ)·P with plain momentum and by
    // −lr·(2 + 2μ + μ²)·P with Nesterov's (algorithms.md, "The step").
    let mu = 0.7;
    let after_two_steps = |nesterov: bool| -> Result<Vec<Vec<f64>>> {
        let (w, params, st) = one_layer(4, 3, 6, DType::F64, 5)?;
        let c = randn(3, 4, 1.0, DType::F64, &mut rng(6))?;
        let h = Hyper {
            momentum: mu,
            nesterov,
            weight_decay: 0.0,
            kl_clip: 0.0,
            stat_decay: 0.0,
            t_cov: 1,
            t_inv: 1,
            ..Hyper::default()
        };
        let mut opt = build(OptimizerKind::Kfac, &params, &h).unwrap();
        for _ in 0..2 {
            let loss = (w.as_tensor() * &c)?.sum_all()?;
            opt.step(&loss.backward()?, Some(std::slice::from_ref(&st)))
                .unwrap();
        }
        Ok(mat(w.as_tensor()))
    };
    let (plain, nesterov) = (after_two_steps(false)?, after_two_steps(true)?);
    let ratio = (2.0 + 2.0 * mu + mu * mu) / (2.0 + mu);
    let want: Vec<Vec<f64>> = plain
        .iter()
        .map(|row| row.iter().map(|x| x * ratio).collect())
        .collect();
    let e = rel_err(&nesterov, &want);
    assert!(e < 1e-9, "{e:e}");
    Ok(())
}

/// One bias-free Linear layer `inputs → outputs` of zeros, its statistics from `m` random rows,
/// and the weight to read back.
fn one_layer(
    inputs: usize,
    outputs: usize,
    m: usize,
    dtype: DType,
    seed: u64,
) -> Result<(Var, ParamSet, LayerStats)> {
    let mut r = rng(seed);
    let st = LayerStats {
        a: randn(m, inputs, 1.0, dtype, &mut r)?,
        g: randn(m, outputs, 0.3, dtype, &mut r)?,
        batch: m,
        positions: 1,
        has_bias: false,
    };
    let w = Var::zeros((outputs, inputs), dtype, &Device::Cpu)?;
    let params = ParamSet {
        layers: vec![LayerSpec {
            name: "fc".into(),
            kind: LayerKind::Linear { inputs, outputs },
            weight: w.clone(),
            bias: None,
        }],
        others: vec![],
    };
    Ok((w, params, st))
}

#[test]
fn stage_timing_is_opt_in_for_every_optimizer() -> Result<()> {
    for kind in OptimizerKind::ALL.iter().copied() {
        // A layer large enough that each timed stage takes measurable time.
        let (w, params, st) = one_layer(64, 32, 16, DType::F32, 12)?;
        let h = Hyper {
            t_cov: 1,
            t_inv: 1,
            ..Hyper::for_kind(kind)
        };
        let mut opt = build(kind, &params, &h).unwrap();
        let step = |opt: &mut Box<dyn optimizers::Optimizer>| -> Result<_> {
            let loss = w.as_tensor().sqr()?.sum_all()?;
            Ok(opt
                .step(&loss.backward()?, Some(std::slice::from_ref(&st)))
                .unwrap())
        };
        let off = step(&mut opt)?;
        assert_eq!(
            off,
            optimizers::StageTimes::default(),
            "{kind}: off by default"
        );
        opt.set_timing(true);
        let on = step(&mut opt)?;
        assert!(on.update > 0.0, "{kind}: {on:?}");
        if kind.is_second_order() {
            assert!(on.statistics > 0.0 && on.inverse > 0.0, "{kind}: {on:?}");
        }
    }
    Ok(())
}

#[test]
fn the_k_fac_family_decays_its_own_damping_and_resumes_the_schedule() -> Result<()> {
    let (w, params, st) = one_layer(6, 4, 8, DType::F64, 13)?;
    // λ halves every 2 epochs of 3 steps: λ_k = 0.1 · 0.5^(k / 6).
    let h = Hyper {
        damping: 0.1,
        damping_decay: 0.5,
        damping_decay_epochs: 2.0,
        t_cov: 1,
        t_inv: 1,
        ..Hyper::default()
    };
    let step = |opt: &mut Box<dyn optimizers::Optimizer>| {
        let loss = w.as_tensor().sqr()?.sum_all()?;
        opt.step(&loss.backward()?, Some(std::slice::from_ref(&st)))
            .map_err(candle_core::Error::from)
    };
    let damping =
        |opt: &dyn optimizers::Optimizer| opt.state().unwrap().meta["damping"].as_f64().unwrap();

    let mut opt = build(OptimizerKind::Kfac, &params, &h).unwrap();
    let e = step(&mut opt).expect_err("no epoch length");
    assert!(e.to_string().contains("set_steps_per_epoch"), "{e}");
    opt.set_steps_per_epoch(3);
    for k in 0..4 {
        step(&mut opt)?;
        let want = 0.1 * 0.5f64.powf(k as f64 / 6.0);
        assert!((damping(opt.as_ref()) - want).abs() < 1e-15, "step {k}");
    }
    // A resumed optimizer is not told the epoch length again: its state holds it.
    let mut resumed = build(OptimizerKind::Kfac, &params, &h).unwrap();
    resumed.load_state(&opt.state().unwrap()).unwrap();
    step(&mut resumed)?;
    assert!((damping(resumed.as_ref()) - 0.1 * 0.5f64.powf(4.0 / 6.0)).abs() < 1e-15);
    Ok(())
}
