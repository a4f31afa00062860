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
